#!/bin/sh
# First start of docker/compose.yaml: trains a model into the store volume when it holds none,
# and does nothing when it already holds one (so `down` + `up` keeps every version).
# VOC_INIT_TRAIN / VOC_INIT_VALID name your own JSONL or CSV files (mount them into the
# container); the default is the banking77 demo sample baked into the image.
set -eu
store="${VOC_STORE:-/models}"
if ls "$store"/*/model.json >/dev/null 2>&1; then
  echo "init: $store already holds a model version; nothing to train"
  exit 0
fi
train="${VOC_INIT_TRAIN:-/app/fixtures/demo_train.jsonl}"
valid="${VOC_INIT_VALID:-/app/fixtures/demo_test.jsonl}"
echo "init: $store holds no model version; training one on $train (about a minute on 2 CPUs)"
exec voc train --train "$train" --valid "$valid" --epochs "${VOC_INIT_EPOCHS:-8}" --store "$store"
