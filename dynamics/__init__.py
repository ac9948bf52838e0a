"""dynamics: gradient methods and the continuous models theory proposes for them, in JAX.

Importing dynamics enables float64 in JAX (``jax_enable_x64``): verification needs it. Arrays
created as float32 stay float32, and `simulate` refuses float32 runs past their safe horizon.
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)

from . import cache as cache  # noqa: E402  (persistent compilation cache when $DYNAMICS_CACHE_DIR is set)
cache.enable_from_environment()

from . import measure as measure  # noqa: E402
from . import models as models  # noqa: E402
from . import predictions as predictions  # noqa: E402
from . import processes as processes  # noqa: E402
from .measure import OrderFit as OrderFit  # noqa: E402
from .measure import convergence_order as convergence_order  # noqa: E402
from .measure import geometric_complexity as geometric_complexity  # noqa: E402
from .derivatives import gradient as gradient  # noqa: E402
from .derivatives import hvp as hvp  # noqa: E402
from .derivatives import third as third  # noqa: E402
from .errors import DivergenceError as DivergenceError  # noqa: E402
from .errors import DynamicsError as DynamicsError  # noqa: E402
from .errors import InputError as InputError  # noqa: E402
from .errors import NonSeparableError as NonSeparableError  # noqa: E402
from .errors import PrecisionError as PrecisionError  # noqa: E402
from .errors import SolverBudgetError as SolverBudgetError  # noqa: E402
from .errors import StepSizeError as StepSizeError  # noqa: E402
from .predictions import GFSLimit as GFSLimit  # noqa: E402
from .predictions import GFSPath as GFSPath  # noqa: E402
from .predictions import central_flow_time_average as central_flow_time_average  # noqa: E402
from .predictions import gfs_limit as gfs_limit  # noqa: E402
from .predictions import gfs_sharpness as gfs_sharpness  # noqa: E402
from .predictions import gfs_sharpness_batch as gfs_sharpness_batch  # noqa: E402
from .models import AbstractTail as AbstractTail  # noqa: E402
from .models import Exponential as Exponential  # noqa: E402
from .models import Logistic as Logistic  # noqa: E402
from .models import MarginLoss as MarginLoss  # noqa: E402
from .models import Objective as Objective  # noqa: E402
from .models import PolyExponential as PolyExponential  # noqa: E402
from .models import Squared as Squared  # noqa: E402
from .models import linear_classifier as linear_classifier  # noqa: E402
from .models import PerExample as PerExample  # noqa: E402
from .models import per_example as per_example  # noqa: E402
from .processes.modified_losses import corridor_learning_rate as corridor_learning_rate  # noqa: E402
from .processes.modified_losses import corridor_residual as corridor_residual  # noqa: E402
from .processes.modified_losses import gradient_noise as gradient_noise  # noqa: E402
from .processes.modified_losses import igr_loss as igr_loss  # noqa: E402
from .processes.modified_losses import multitask_modified_loss as multitask_modified_loss  # noqa: E402
from .processes.modified_losses import partition_averaged_modified_loss as partition_averaged_modified_loss  # noqa: E402
from .processes.modified_losses import reshuffling_modified_loss as reshuffling_modified_loss  # noqa: E402
from .models import tail_from as tail_from  # noqa: E402
from .measure import direction_error as direction_error  # noqa: E402
from .predictions import l1_max_margin as l1_max_margin  # noqa: E402
from .predictions import lexicographic_max_margin as lexicographic_max_margin  # noqa: E402
from .predictions import lq_kkt_vertices as lq_kkt_vertices  # noqa: E402
from .predictions import dft_l1_max_margin as dft_l1_max_margin  # noqa: E402
from .predictions import max_margin as max_margin  # noqa: E402
from .predictions import multiclass_max_margin as multiclass_max_margin  # noqa: E402
from .predictions import rmsprop_stationary_preconditioner as rmsprop_stationary_preconditioner  # noqa: E402
from .models import softmax_classifier as softmax_classifier  # noqa: E402
from .measure import normalized_margin as normalized_margin  # noqa: E402
from .predictions import separable_asymptotics as separable_asymptotics  # noqa: E402
from .processes import SGD as SGD  # noqa: E402
from .processes import SAM as SAM  # noqa: E402
from .processes import DelayedGD as DelayedGD  # noqa: E402
from .processes import sam_modified_loss as sam_modified_loss  # noqa: E402
from .processes import AbstractDiscrete as AbstractDiscrete  # noqa: E402
from .processes import AbstractFlow as AbstractFlow  # noqa: E402
from .processes import AbstractProcess as AbstractProcess  # noqa: E402
from .processes import AbstractSDE as AbstractSDE  # noqa: E402
from .processes import CentralFlow as CentralFlow  # noqa: E402
from .processes import RMSPropCentralFlow as RMSPropCentralFlow  # noqa: E402
from .processes import RMSPropFlowState as RMSPropFlowState  # noqa: E402
from .processes import RMSPropStableFlow as RMSPropStableFlow  # noqa: E402
from .processes import scalar_rmsprop as scalar_rmsprop  # noqa: E402
from .processes import ContinualModifiedFlow as ContinualModifiedFlow  # noqa: E402
from .processes import DriftAdjustedGD as DriftAdjustedGD  # noqa: E402
from .processes import EdgeFlow as EdgeFlow  # noqa: E402
from .processes import GameGD as GameGD  # noqa: E402
from .processes import GameModifiedFlow as GameModifiedFlow  # noqa: E402
from .processes import GradientDescent as GradientDescent  # noqa: E402
from .processes import GradientFlow as GradientFlow  # noqa: E402
from .processes import HeavyBall as HeavyBall  # noqa: E402
from .processes import ModifiedFlow as ModifiedFlow  # noqa: E402
from .processes import Nesterov as Nesterov  # noqa: E402
from .processes import NormalizedGD as NormalizedGD  # noqa: E402
from .processes import OptaxMethod as OptaxMethod  # noqa: E402
from .processes import PrincipalFlow as PrincipalFlow  # noqa: E402
from .processes import RodFlow as RodFlow  # noqa: E402
from .processes import rod_from_gd as rod_from_gd  # noqa: E402
from .processes import MethodRodFlow as MethodRodFlow  # noqa: E402
from .processes import adam_rod as adam_rod  # noqa: E402
from .processes import heavy_ball_rod as heavy_ball_rod  # noqa: E402
from .processes import SeedEnsemble as SeedEnsemble  # noqa: E402
from .processes import SequentialGD as SequentialGD  # noqa: E402
from .processes import StableFlow as StableFlow  # noqa: E402
from .processes import StepCost as StepCost  # noqa: E402
from .processes import StochasticModifiedEquation as StochasticModifiedEquation  # noqa: E402
from .processes import TimeUnit as TimeUnit  # noqa: E402
from .processes import bea_coefficients as bea_coefficients  # noqa: E402
from .processes import game_fields as game_fields  # noqa: E402
from .processes import lie_bracket as lie_bracket  # noqa: E402
from .processes import minibatch_noise_factor as minibatch_noise_factor  # noqa: E402
from .processes import principal_coefficient as principal_coefficient  # noqa: E402
from .simulate import simulate as simulate  # noqa: E402
from .measure import Eigenpairs as Eigenpairs  # noqa: E402
from .measure import eigenpairs as eigenpairs  # noqa: E402
from .measure import require_converged as require_converged  # noqa: E402
from .measure import sharpness as sharpness  # noqa: E402
from .measure import SpectralDensity as SpectralDensity  # noqa: E402
from .measure import spectral_density as spectral_density  # noqa: E402
from .measure import preconditioned_sharpness as preconditioned_sharpness  # noqa: E402
from .trajectory import Trajectory as Trajectory  # noqa: E402

# Module paths before the models/ processes/ predictions/ measure/ layout, kept as aliases for one release.
_MOVED = {"gfs": predictions.gfs, "mlp": models.mlp, "networks": models.networks, "factorization": models.factorization,
          "losses": models.losses, "spectrum": measure.spectrum, "eos_metrics": measure.eos,
          "convergence": measure.convergence, "modified_losses": processes.modified_losses}
for _name, _module in _MOVED.items():
    globals()[_name] = _module
    sys.modules[f"{__name__}.{_name}"] = _module
del _name, _module
