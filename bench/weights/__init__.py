"""The weight generator (FRAME's ``benchmark pallet``): ``python -m bench.weights`` measures
every weight of the runtime on a real chain and writes twinchain/runtime/weights/<pallet>.py.

:mod:`.catalogue` names each pallet's weights and the measurements they follow from,
:mod:`.measure` takes the measurements, :mod:`.render` writes the modules.
"""
