"""IF-NAS: interleaving-free neural architecture search in the L-chain space.

The package follows "Exploring complicated search spaces with interleaving-free sampling":
`ifnas.space` holds the search spaces, `ifnas.nn` the supernet and the derived network,
`ifnas.search` the search loop and `ifnas.train` the retraining of a derived architecture.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
