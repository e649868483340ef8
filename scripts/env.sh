# Sourced by the project's scripts: where the torch venv and the cargo target folder live,
# and the variables that make torch-sys build against the venv's libtorch.
# Both folders are kept outside the clone (under ~/.cache/voc by default) so fresh clones
# and CI runs reuse them; override with VOC_VENV and CARGO_TARGET_DIR.
VOC_CACHE="${VOC_CACHE:-$HOME/.cache/voc}"
export VOC_VENV="${VOC_VENV:-$VOC_CACHE/torch-venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$VOC_CACHE/target}"
export LIBTORCH_USE_PYTORCH=1
export VIRTUAL_ENV="$VOC_VENV"
export PATH="$VOC_VENV/bin:$PATH"
