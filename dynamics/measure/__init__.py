"""What a run shows, computed from its states: margins, KKT residuals from its own dual weights, alignment,
spectra, edge-of-stability metrics, rate fits and convergence orders."""

from .convergence import OrderFit as OrderFit
from .convergence import convergence_order as convergence_order
from .eos import distance_to_gd as distance_to_gd
from .eos import loss_oscillation as loss_oscillation
from .eos import midpoints as midpoints
from .eos import sharpness_along as sharpness_along
from .factorization import balance_defect as balance_defect
from .factorization import effective_rank as effective_rank
from .geometry import angle as angle
from .geometry import direction_error as direction_error
from .geometry import margins as margins
from .geometry import normalized_margin as normalized_margin
from .kkt import layer_alignment as layer_alignment
from .kkt import normalized_margin_homogeneous as normalized_margin_homogeneous
from .kkt import parameter_kkt as parameter_kkt
from .kkt import predictor_kkt as predictor_kkt
from .kkt import predictor_kkt_path as predictor_kkt_path
from .kkt import smoothed_margin as smoothed_margin
from .preconditioned import adam_preconditioner as adam_preconditioner
from .preconditioned import preconditioned_sharpness as preconditioned_sharpness
from .preconditioned import rmsprop_preconditioner as rmsprop_preconditioner
from .rates import LinearFit as LinearFit
from .rates import extrapolate_inverse as extrapolate_inverse
from .rates import fit_line as fit_line
from .rates import loglog_slope as loglog_slope
from .spectrum import Eigenpairs as Eigenpairs
from .spectrum import eigenpairs as eigenpairs
from .spectrum import require_converged as require_converged
from .spectrum import sharpness as sharpness
from .spectrum import top_eigenpairs as top_eigenpairs
