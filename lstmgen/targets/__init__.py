"""Deployment targets: what each runtime or device can run."""

# Ethos-U accelerator names live here, with no imports, so that the CLI can list them without loading vela's rules.
DEFAULT_ACCELERATOR = "ethos-u55-128"
# vela 5.2.0's --accelerator-config choices
ACCELERATORS: tuple[str, ...] = (
    *(f"ethos-u55-{m}" for m in (32, 64, 128, 256)),
    *(f"ethos-u65-{m}" for m in (256, 512)),
    *(f"ethos-u85-{m}" for m in (128, 256, 512, 1024, 2048)),
)
