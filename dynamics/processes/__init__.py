"""Everything that moves parameters in time."""

from .base import AbstractDiscrete as AbstractDiscrete
from .base import AbstractFlow as AbstractFlow
from .base import AbstractProcess as AbstractProcess
from .discrete import SGD as SGD
from .discrete import GradientDescent as GradientDescent
from .discrete import HeavyBall as HeavyBall
from .discrete import NormalizedGD as NormalizedGD
from .flows import GradientFlow as GradientFlow
