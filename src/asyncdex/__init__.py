"""asyncdex: asynchronous transaction processing for decentralized perpetual-futures venues."""

__version__ = "0.1.0"
