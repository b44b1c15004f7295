#!/usr/bin/env bash
# The swarm driver's end-to-end run on this machine: a one-node swarm, a
# 3-replica cluster with its blobs in an S3 bucket (versitygw), two images
# pushed with the docker CLI, an upgrade 2.0.3 -> 3.0.1 (4 hops) with one
# task paused during hop 2, the images pulled back from another replica,
# and a destroy that must leave no service, volume, network, secret or
# bucket. It makes the engine a swarm only if it is in none, and then
# leaves it. Needs: docker, python3, versitygw (go install
# github.com/versity/versitygw/cmd/versitygw@v1.8.0).
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
export LADDER_HOME="$work/home" DOCKER_CONFIG="$work/docker"
mkdir -p "$DOCKER_CONFIG" "$work/s3"
L="$work/ladder"
C=swarm-s3
CGO_ENABLED=0 go build -o "$L" ./cmd/ladder
gw=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")

made_swarm=""; had_gwbridge=""
docker network inspect docker_gwbridge >/dev/null 2>&1 && had_gwbridge=1
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  made_swarm=1
fi
vgw=""
cleanup() {
  "$L" cluster destroy --cluster $C >/dev/null 2>&1 || true
  [ -n "$vgw" ] && kill "$vgw" 2>/dev/null
  if [ -n "$made_swarm" ]; then
    docker swarm leave --force >/dev/null
    [ -z "$had_gwbridge" ] && docker network rm docker_gwbridge >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The S3 server listens on the docker bridge's gateway: reachable from the
# tasks and from this machine. Its keys go in its environment and in a 0600
# file for ladder, never on a command line.
host=$(ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("",0)); print(s.getsockname()[1])')
umask 077
printf 'AWS_ACCESS_KEY_ID=ladder%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  "$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$work/s3.keys"
(set -a; . "$work/s3.keys"; set +a
 ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
   exec "$gw" --port "$host:$port" posix "$work/s3" >"$work/versitygw.log" 2>&1) &
vgw=$!
S3="s3://ladder-$C?endpoint=http://$host:$port&region=us-east-1"

echo "== images"
"$L" images build --versions 2.0.3,2.1.4,2.2.5,2.3.2,3.0.1 -o json > "$work/images.json"
build=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["build"])' "$work/images.json")
echo "== create"
"$L" cluster create --driver swarm --cluster $C --version 2.0.3 --build "$build" --replicas 3 \
  --blob-store "$S3" --blob-credentials "$work/s3.keys" --create-bucket >/dev/null
docker service ls --filter label=ladder.cluster=$C --format '{{.Name}} {{.Replicas}} {{.Image}}'
url() { "$L" cluster status --cluster $C -o json | python3 -c "import json,sys; print(json.load(sys.stdin)['replicas'][$1]['url'].split('//')[1])"; }
P1=$(url 0); P2=$(url 1)
pw="$LADDER_HOME/clusters/$C/admin-password"

echo "== docker CLI push to $P1"
docker login "$P1" -u admin --password-stdin < "$pw" >/dev/null 2>&1
docker tag "ladder-registry-base:$build" "$P1/ladder/base:1"
docker tag "ladder-registry:2.0.3-$build" "$P1/ladder/release:2.0.3"
docker push -q "$P1/ladder/base:1" >/dev/null
docker push -q "$P1/ladder/release:2.0.3" >/dev/null
D1=$(docker inspect --format '{{index .RepoDigests 0}}' "$P1/ladder/base:1" | cut -d@ -f2)
D2=$(docker inspect --format '{{index .RepoDigests 0}}' "$P1/ladder/release:2.0.3" | cut -d@ -f2)
echo "pushed base@$D1 release@$D2; objects in the bucket: $(find "$work/s3/ladder-$C" -type f | wc -l)"

echo "== upgrade to 3.0.1, a task paused during hop 2"
"$L" upgrade --cluster $C --to 3.0.1 --yes --stall-after 5s > "$work/upgrade.out" 2>&1 &
up=$!
while kill -0 $up 2>/dev/null; do
  # Freeze the replica hop 2 rolls last: the wait before its first replace
  # finds it stuck.
  last=$(grep -A2 "hop 2 of 4" "$work/upgrade.out" | sed -n 's/.*roll order: .*, //p' | head -1 || true)
  if [ -n "$last" ]; then
    docker pause "$(docker ps -q --filter label=ladder.cluster=$C --filter label=ladder.replica="$last" | head -1)" >/dev/null
    echo "paused $last (docker pause of its task's container)"
    break
  fi
  sleep 0.1
done
wait $up
grep -E "hop [0-9] of|frozen|restart replica|settled after|upgraded to" "$work/upgrade.out"

echo "== the images, pulled from another replica ($P2)"
docker rmi "$P1/ladder/base:1" "$P1/ladder/release:2.0.3" >/dev/null
docker login "$P2" -u admin --password-stdin < "$pw" >/dev/null 2>&1
docker pull -q "$P2/ladder/base@$D1" >/dev/null
docker pull -q "$P2/ladder/release:2.0.3" >/dev/null
G2=$(docker inspect --format '{{index .RepoDigests 0}}' "$P2/ladder/release:2.0.3" | cut -d@ -f2)
[ "$G2" = "$D2" ] || { echo "release:2.0.3 pulled as $G2, pushed as $D2" >&2; exit 1; }
echo "base@$D1 and release:2.0.3@$G2 intact"
docker rmi "$P2/ladder/base@$D1" "$P2/ladder/release:2.0.3" >/dev/null

echo "== destroy"
"$L" cluster destroy --cluster $C
left="services=$(docker service ls -q --filter label=ladder.cluster=$C | wc -l) volumes=$(docker volume ls -q --filter label=ladder.cluster=$C | wc -l)"
left="$left networks=$(docker network ls -q --filter name=ladder-$C | wc -l) secrets=$(docker secret ls -q --filter label=ladder.cluster=$C | wc -l)"
left="$left bucket=$(test -e "$work/s3/ladder-$C" && echo 1 || echo 0)"
echo "left behind: $left"
[ "$left" = "services=0 volumes=0 networks=0 secrets=0 bucket=0" ]
