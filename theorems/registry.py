"""The registered theorems, in the order `python -m theorems` runs them."""

from .andriushchenko2022_sam_bias import Andriushchenko2022
from .barrett2021_igr import BarrettDherin2021
from .bartlett2023_sam import Bartlett2023, LongBartlett2023, SamModifiedFlow
from .cohen2021_eos import Cohen2021
from .cohen2022_adaptive_eos import Cohen2022Adaptive, Cohen2022Momentum
from .cohen2025_central_flow import Cohen2025
from .cohen2025_rmsprop_central_flow import Cohen2025RMSProp
from .damian2023_self_stabilization import Damian2023
from .dherin2022_geometric_complexity import Dherin2022
from .dherin2023_continual import Dherin2023
from .dherin2024_corridors import DherinRosca2024
from .eos_comparison import EosModelComparison
from .giladi2020_delay import Giladi2020
from .gunasekar2017_factorization import Gunasekar2017
from .gunasekar2018_linear_conv import Gunasekar2018
from .kreisler2023_gfs import Kreisler2023
from .li2017_sme import LiTaiE2017
from .lyu2020_homogeneous import LyuLi2020, Nacson2019Depth
from .mulayoff2021_minima_stability import Mulayoff2021
from .nacson2019_lexicographic import Nacson2019Lexicographic
from .mobahi2020_self_distillation import Mobahi2020
from .moon2026_sam_margin import Moon2026
from .nacson2019_sgd import NacsonSrebroSoudry2019
from .nacson2019_tails import Nacson2019
from .regis2026_rod_edge import RegisChewi2026
from .regis2026_rod_methods import RegisChewi2026Methods
from .rosca2021_games import Rosca2021
from .rosca2023_principal_flow import Rosca2023
from .sagun2017_hessian_outliers import Sagun2017
from .smith2021_reshuffling import Smith2021
from .soudry2018 import Soudry2018
from .soudry2018_multiclass import Soudry2018Multiclass
from .woodworth2020_kernel_rich import Woodworth2020
from .yun2021_tensor import Yun2021

THEOREMS = {t.id: t for t in (
    # issue 2: gradient methods on separable data
    Soudry2018(), Nacson2019(), NacsonSrebroSoudry2019(),
    # issue 14: multi-class max margin
    Soudry2018Multiclass(),
    # issue 3: continuous models of gradient descent
    BarrettDherin2021(), Rosca2023(), Smith2021(), Rosca2021(), Dherin2023(), DherinRosca2024(), LiTaiE2017(),
    # issue 4: implicit bias of linear and homogeneous networks
    Gunasekar2018(), Yun2021(), Woodworth2020(), LyuLi2020(), Nacson2019Depth(), Nacson2019Lexicographic(),
    Gunasekar2017(),
    # issue 5: edge of stability
    Cohen2021(), Kreisler2023(), Damian2023(), Cohen2025(), RegisChewi2026(), EosModelComparison(),
    # issue 13: momentum and adaptive methods at the edge of stability
    Cohen2022Momentum(), Cohen2022Adaptive(),
    # issue 13: central flows of RMSProp
    Cohen2025RMSProp(),
    # issue 13: rod flows beyond GD
    RegisChewi2026Methods(),
    # issue 12: sharpness-aware minimization
    Bartlett2023(), LongBartlett2023(), SamModifiedFlow(),
    Andriushchenko2022(),
    Moon2026(),
    # issue 15: geometry of what GD learns
    Dherin2022(),
    # issue 14: minima stability in function space
    Mulayoff2021(),
    # issue 14: delayed gradient descent
    Giladi2020(),
    # issue 15: the geometry of what GD learns
    Mobahi2020(),
    # issue 15: Hessian bulk and outliers
    Sagun2017(),
)}


def get(ids=None):
    """Theorems by id (all when ids is empty); unknown ids raise KeyError naming the known ones."""
    if not ids:
        return list(THEOREMS.values())
    unknown = [i for i in ids if i not in THEOREMS]
    if unknown:
        raise KeyError(f"unknown theorem id(s) {unknown}; known: {sorted(THEOREMS)}")
    return [THEOREMS[i] for i in ids]
