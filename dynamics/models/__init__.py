"""Every parametrization and loss a process can run on: margin losses and linear classifiers, linear networks
(deep, diagonal, convolutional, tensor), two-layer homogeneous nets, MLPs and scalar networks, matrix factorization,
and per-example losses of any model (`per_example`)."""

from . import factorization as factorization
from . import mlp as mlp
from . import networks as networks
from . import toys as toys
from .linear import linear_classifier as linear_classifier
from .linear import tail_from as tail_from
from .multiclass import SoftmaxCrossEntropy as SoftmaxCrossEntropy
from .multiclass import softmax_classifier as softmax_classifier
from .losses import AbstractTail as AbstractTail
from .losses import Exponential as Exponential
from .losses import Logistic as Logistic
from .losses import MarginLoss as MarginLoss
from .losses import Objective as Objective
from .losses import PolyExponential as PolyExponential
from .losses import Squared as Squared
from .per_example import PerExample as PerExample
from .per_example import per_example as per_example
