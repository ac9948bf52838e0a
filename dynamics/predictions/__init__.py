"""What theory predicts, computed independently of the runs."""

from .asymptotics import SeparableAsymptotics as SeparableAsymptotics
from .asymptotics import separable_asymptotics as separable_asymptotics
from .geometry import angle as angle
from .geometry import direction_error as direction_error
from .geometry import margins as margins
from .geometry import normalized_margin as normalized_margin
from .max_margin import L1MaxMarginSolution as L1MaxMarginSolution
from .max_margin import MaxMarginSolution as MaxMarginSolution
from .max_margin import l1_max_margin as l1_max_margin
from .max_margin import max_margin as max_margin
from .max_margin import require_separable as require_separable
from .max_margin import separability_certificate as separability_certificate
from .rates import LinearFit as LinearFit
from .rates import extrapolate_inverse as extrapolate_inverse
from .rates import fit_line as fit_line
from .rates import loglog_slope as loglog_slope
from .step_size import gd_step_bound as gd_step_bound
from .step_size import require_step_below as require_step_below
