#!/usr/bin/env bash
# Installs what `make deploy-check` needs into one git-ignored directory (default
# .venv-tools/), each tool at a pinned version and from a package registry through its
# own client; a tool already there at that version is left alone, so later runs need no
# network. Usage: deploy/tools/install.sh [DIR]
#
#   kustomize            Go module proxy (go install)
#   kubernetes-validate  PyPI (venv validate/; Kubernetes' JSON schemas ship inside it)
#   check-jsonschema     PyPI (venv validate/; ships the Compose Specification schema)
#   checkov              PyPI (venv checkov/, its own: its pins are its own)
#   CRD schemas          Strimzi: Maven Central (io.strimzi:api + crd-generator, run with a
#                        JDK 21+); CloudNativePG, its Barman Cloud plugin, KEDA,
#                        prometheus-operator, the Gateway API, Cilium: their Go modules
set -euo pipefail

KUSTOMIZE_VERSION=v5.8.2            # v5.8.3 needs Go 1.27
STRIMZI_VERSION=1.2.0               # kafka.strimzi.io/v1
CNPG_VERSION=v1.30.0                # postgresql.cnpg.io/v1
BARMAN_CLOUD_VERSION=v0.14.0        # barmancloud.cnpg.io/v1 (CloudNativePG's backup plugin)
KEDA_VERSION=v2.21.0                # keda.sh/v1alpha1
PROMETHEUS_OPERATOR_VERSION=v0.85.0 # monitoring.coreos.com/v1
GATEWAY_API_VERSION=v1.6.3          # gateway.networking.k8s.io/v1 (standard channel)
CILIUM_VERSION=v1.20.2              # cilium.io/v2 (the component components/cilium)

here="$(cd "$(dirname "$0")" && pwd)"
tools="$(mkdir -p "${1:-.venv-tools}" && cd "${1:-.venv-tools}" && pwd)"
python="${PYTHON:-python3.11}"

fail() { echo "deploy tools: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || fail "$1 not found: $2"; }

# A stamp per tool records what was installed; a new pin (or requirements file) reinstalls.
fresh() { [ -f "$tools/.stamps/$1" ] && [ "$(cat "$tools/.stamps/$1")" = "$2" ]; }
stamp() { mkdir -p "$tools/.stamps"; echo "$2" > "$tools/.stamps/$1"; }

kustomize() {
    fresh kustomize "$KUSTOMIZE_VERSION" && [ -x "$tools/bin/kustomize" ] && return
    need go "install Go (1.24 or later)"
    echo "deploy tools: kustomize $KUSTOMIZE_VERSION"
    GOBIN="$tools/bin" GOTOOLCHAIN=local GOFLAGS=-mod=mod \
        go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
    stamp kustomize "$KUSTOMIZE_VERSION"
}

venv() {  # venv NAME: a virtualenv from deploy/tools/NAME-requirements.txt
    local name=$1 requirements="$here/$1-requirements.txt" sum
    sum="$(cksum < "$requirements")"
    fresh "$name" "$sum" && [ -x "$tools/$name/bin/python" ] && return
    command -v "$python" >/dev/null || fail "$python not found: install Python 3.11"
    echo "deploy tools: $name ($(grep -v '^#' "$requirements" | wc -l) pinned packages)"
    rm -rf "${tools:?}/$name"
    "$python" -m venv "$tools/$name"
    "$tools/$name/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    stamp "$name" "$sum"
}

go_module_dir() {  # the directory of a downloaded Go module
    GOFLAGS=-mod=mod go mod download -json "$1" \
        | "$python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
}

java21() {  # a java of version 21 or later (Strimzi's generator is built for 21)
    local candidate major
    for candidate in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} /usr/lib/jvm/*/bin/java java; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        major="$("$candidate" -XshowSettings:properties -version 2>&1 \
            | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')"
        if [ -n "$major" ] && [ "$major" -ge 21 ]; then echo "$candidate"; return; fi
    done
    fail "no JDK 21 or later found (Strimzi's CRD generator needs one): install one, or set JAVA_HOME"
}

crds() {
    local pins="strimzi $STRIMZI_VERSION cnpg $CNPG_VERSION barman-cloud $BARMAN_CLOUD_VERSION keda $KEDA_VERSION prometheus-operator $PROMETHEUS_OPERATOR_VERSION gateway-api $GATEWAY_API_VERSION cilium $CILIUM_VERSION"
    fresh crds "$pins" && [ -d "$tools/crds" ] && return
    need go "install Go (1.24 or later)"
    need mvn "install Maven"
    local out="$tools/crds.new" m2="$tools/m2" dir jar generator
    rm -rf "$out" && mkdir -p "$out"

    echo "deploy tools: CloudNativePG $CNPG_VERSION, Barman Cloud $BARMAN_CLOUD_VERSION, KEDA $KEDA_VERSION, prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs"
    dir="$(go_module_dir "github.com/cloudnative-pg/cloudnative-pg@$CNPG_VERSION")"
    cp "$dir"/config/crd/bases/postgresql.cnpg.io_{clusters,scheduledbackups,poolers}.yaml "$out/"
    dir="$(go_module_dir "github.com/cloudnative-pg/plugin-barman-cloud@$BARMAN_CLOUD_VERSION")"
    cp "$dir"/config/crd/bases/barmancloud.cnpg.io_objectstores.yaml "$out/"
    dir="$(go_module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")"
    cp "$dir"/config/crd/bases/keda.sh_{scaledobjects,triggerauthentications}.yaml "$out/"
    dir="$(go_module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")"
    cp "$dir"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,podmonitors,prometheusrules}.yaml "$out/"

    dir="$(go_module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")"
    cp "$dir"/config/crd/standard/gateway.networking.k8s.io_{gateways,httproutes}.yaml "$out/"
    dir="$(go_module_dir "github.com/cilium/cilium@$CILIUM_VERSION")"
    cp "$dir"/pkg/k8s/apis/cilium.io/client/crds/v2/ciliumnetworkpolicies.yaml "$out/"

    echo "deploy tools: Strimzi $STRIMZI_VERSION CRDs (its own generator over its API classes)"
    for artifact in api crd-generator; do
        mvn --batch-mode --quiet -Dstyle.color=never dependency:get -Dmaven.repo.local="$m2" -Dtransitive=false \
            -Dartifact="io.strimzi:$artifact:$STRIMZI_VERSION"
    done
    jar="$m2/io/strimzi/api/$STRIMZI_VERSION/api-$STRIMZI_VERSION.jar"
    generator="$m2/io/strimzi/crd-generator/$STRIMZI_VERSION/crd-generator-$STRIMZI_VERSION.jar"
    "$(java21)" -cp "$jar:$generator" io.strimzi.crdgenerator.CrdGenerator --yaml \
        --crd-api-version v1 --api-versions v1 --storage-version v1 \
        "io.strimzi.api.kafka.model.kafka.Kafka=$out/kafka.strimzi.io_kafkas.yaml" \
        "io.strimzi.api.kafka.model.nodepool.KafkaNodePool=$out/kafka.strimzi.io_kafkanodepools.yaml" \
        "io.strimzi.api.kafka.model.topic.KafkaTopic=$out/kafka.strimzi.io_kafkatopics.yaml" \
        "io.strimzi.api.kafka.model.user.KafkaUser=$out/kafka.strimzi.io_kafkausers.yaml" \
        >/dev/null
    rm -rf "$tools/crds" && mv "$out" "$tools/crds"
    printf '%s\n' "$pins" > "$tools/crds/VERSIONS"
    stamp crds "$pins"
}

kustomize
venv validate
venv checkov
crds
