"""mitmproxy entry point: `mitmdump -s addons/tokengate.py`.

Assembles the tokengate addons in hook order: the gateway tokenizes and restores each
flow, then the recorder writes the tokenized flow to its session's recording.
"""

from addons.gateway import Gateway
from addons.recording import Recorder

gateway = Gateway()

addons = [
    gateway,
    Recorder(vault=lambda: gateway.vault),
]
