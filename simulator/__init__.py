"""exchange-watch exchange simulator: local, fault-injectable stand-ins for the public REST APIs
of Binance, Bybit, OKX, Coinbase Exchange and Kraken (see :mod:`simulator.server`)."""

from simulator.server import SimulatorServer, run_in_thread, simulator_in_thread

__all__ = ["SimulatorServer", "run_in_thread", "simulator_in_thread"]
