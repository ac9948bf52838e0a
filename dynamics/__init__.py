"""dynamics: gradient methods and the continuous models theory proposes for them, in JAX.

Importing dynamics enables float64 in JAX (``jax_enable_x64``): verification needs it. Arrays
created as float32 stay float32, and `simulate` refuses float32 runs past their safe horizon.
"""

import jax

jax.config.update("jax_enable_x64", True)

from . import predictions as predictions  # noqa: E402
from .errors import DivergenceError as DivergenceError  # noqa: E402
from .errors import DynamicsError as DynamicsError  # noqa: E402
from .errors import InputError as InputError  # noqa: E402
from .errors import NonSeparableError as NonSeparableError  # noqa: E402
from .errors import PrecisionError as PrecisionError  # noqa: E402
from .errors import SolverBudgetError as SolverBudgetError  # noqa: E402
from .errors import StepSizeError as StepSizeError  # noqa: E402
from .losses import AbstractTail as AbstractTail  # noqa: E402
from .losses import Exponential as Exponential  # noqa: E402
from .losses import Logistic as Logistic  # noqa: E402
from .losses import MarginLoss as MarginLoss  # noqa: E402
from .losses import Objective as Objective  # noqa: E402
from .losses import PolyExponential as PolyExponential  # noqa: E402
from .losses import Squared as Squared  # noqa: E402
from .models import linear_classifier as linear_classifier  # noqa: E402
from .models import tail_from as tail_from  # noqa: E402
from .predictions import direction_error as direction_error  # noqa: E402
from .predictions import l1_max_margin as l1_max_margin  # noqa: E402
from .predictions import max_margin as max_margin  # noqa: E402
from .predictions import normalized_margin as normalized_margin  # noqa: E402
from .predictions import separable_asymptotics as separable_asymptotics  # noqa: E402
from .processes import SGD as SGD  # noqa: E402
from .processes import AbstractDiscrete as AbstractDiscrete  # noqa: E402
from .processes import AbstractFlow as AbstractFlow  # noqa: E402
from .processes import GradientDescent as GradientDescent  # noqa: E402
from .processes import GradientFlow as GradientFlow  # noqa: E402
from .processes import HeavyBall as HeavyBall  # noqa: E402
from .processes import NormalizedGD as NormalizedGD  # noqa: E402
from .simulate import simulate as simulate  # noqa: E402
from .trajectory import Trajectory as Trajectory  # noqa: E402
