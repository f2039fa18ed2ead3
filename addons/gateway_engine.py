"""Open the gateway's components: detector, vault, pipeline and identities.

The detector is cached per process, because loading spaCy takes seconds and mitmproxy
reloads an edited script without restarting.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import exceptions

from addons.client_identity import IdentityDeriver, IdentityError, load_or_create_secret
from addons.gateway_config import GatewaySettings

_detectors: dict[Path | None, Any] = {}
_detectors_lock = threading.Lock()


@dataclass
class Engine:
    """The components that do the work, opened from the settings."""

    vault: Any
    pipeline: Any
    identities: IdentityDeriver
    detector: Any
    rules_dir: Path | None
    vault_path: Path
    key_file: Path


def load_detector(rules_dir: Path | None) -> Any:
    """Return the detector for a rules directory, loading spaCy only once per process.

    The cache outlives the addon object, so mitmproxy's script reload does not load
    spaCy again. Raises OptionsError naming the rules directory.
    """
    from addons.detection import DetectionSettings, Detector, RulesError

    with _detectors_lock:
        if rules_dir in _detectors:
            return _detectors[rules_dir]
        detection_settings = DetectionSettings()
        if rules_dir is not None:
            detection_settings = DetectionSettings(rules_dir=rules_dir)
        try:
            detector = Detector(detection_settings)
        except (RulesError, OSError) as e:
            raise exceptions.OptionsError(
                f"Cannot load detection rules from {detection_settings.rules_dir} "
                f"(tokengate_rules): {e}"
            ) from e
        _detectors[rules_dir] = detector
        return detector


def open_engine(settings: GatewaySettings, current: Engine | None) -> Engine:
    """Open the vault, detector and pipeline, reusing what the settings did not change.

    Raises OptionsError with the path and the failure.
    """
    from addons.pipeline import Pipeline
    from vault import Vault, VaultError

    if (
        current is not None
        and current.vault_path == settings.vault_path
        and current.key_file == settings.key_file
        and current.rules_dir == settings.rules_dir
        and current.pipeline.restore_origins == settings.restore_origins
    ):
        return current

    detector = load_detector(settings.rules_dir)

    for directory in {settings.vault_path.parent, settings.key_file.parent}:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        vault = Vault.open(settings.vault_path, settings.key_file, create=True)
    except VaultError as e:
        raise exceptions.OptionsError(
            f"Cannot open the vault {settings.vault_path} with key file "
            f"{settings.key_file} (tokengate_vault, tokengate_key_file): {e}"
        ) from e
    try:
        secret = load_or_create_secret(settings.identity_key_file)
    except IdentityError as e:
        raise exceptions.OptionsError(str(e)) from e

    if current is not None:
        current.vault.close()
    return Engine(
        vault=vault,
        pipeline=Pipeline(detector, vault, restore_origins=settings.restore_origins),
        identities=IdentityDeriver(secret),
        detector=detector,
        rules_dir=settings.rules_dir,
        vault_path=settings.vault_path,
        key_file=settings.key_file,
    )
