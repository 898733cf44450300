#!/bin/sh
# Entry point of the worker images: puts the models the image ships (the default COCO detector, the OCR models,
# built when the image was built) into the model repository volume where they are missing, then
# runs the command (default: python -m services.worker). A model already in the repository is never
# touched, so models added or rebuilt there survive image upgrades. Each model is copied into a
# temporary directory and renamed into place, so a worker sharing the volume never sees half of one.
set -eu
seed="${VSIM_SEED_MODELS:-/opt/vsim/seed-models}"
repository="${WORKER_MODEL_REPOSITORY:-/models}"
if [ -d "$seed" ]; then
  mkdir -p "$repository"
  for spec in "$seed"/*/*/model.json; do
    [ -f "$spec" ] || continue
    source_dir="${spec%/model.json}"
    version="${source_dir##*/}"
    project_dir="${source_dir%/*}"
    project="${project_dir##*/}"
    target="$repository/$project/$version"
    [ -e "$target/model.json" ] && continue
    mkdir -p "$repository/$project"
    staging="$(mktemp -d "$repository/$project/.seed.XXXXXX")"
    cp -R "$source_dir/." "$staging/"
    if mv -T "$staging" "$target" 2>/dev/null; then
      echo "vsim-worker-entrypoint: installed model $project/$version into $repository"
    else
      rm -rf "$staging"  # another worker installed it meanwhile, or $target is in the way
      [ -e "$target/model.json" ] || echo "vsim-worker-entrypoint: cannot install model $project/$version: $target is in the way" >&2
    fi
  done
fi
exec "$@"
