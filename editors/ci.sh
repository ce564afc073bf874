#!/usr/bin/env bash
# CI for the editor integrations.
#
#   editors/ci.sh setup   install the VS Code extension's npm packages, build diffill.vsix,
#                         and install the end-to-end tools (code-server, playwright-core)
#   editors/ci.sh test    run the editor tests (what `go test ./...` runs for editors/)
#
# .ci/run calls `setup` before `go test ./...`; the Go tests in editors/nvim and
# editors/vscode then find the tools and run. Nothing here writes outside
# editors/ except npm's cache and the ripgrep seed in $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")"
EDITORS=$PWD

log() { printf '== editors: %s\n' "$*"; }

# code-server 4.100.3 is the newest that runs on Node 20; its postinstall checks the major version.
check_node() {
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		echo "editors/ci.sh: node and npm are needed (Node 20)" >&2
		exit 1
	fi
}

# Native modules of code-server (kerberos, argon2, node-pty) build with node-gyp.
apt_deps() {
	local need=()
	dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
	command -v make >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 || need+=(build-essential)
	command -v python3 >/dev/null 2>&1 || need+=(python3)
	command -v rg >/dev/null 2>&1 || need+=(ripgrep)
	if [ ${#need[@]} -gt 0 ]; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
			log "apt-get install ${need[*]}"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
				{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
		else
			echo "editors/ci.sh: missing ${need[*]} (install them, as root: apt-get install -y ${need[*]})" >&2
			return 1
		fi
	fi
}

setup_vscode() {
	# npm ci starts from scratch each time; skip it when node_modules was installed from this very lock file.
	if cmp -s vscode/package-lock.json vscode/node_modules/.diffill-installed-lock; then
		log "vscode: node_modules up to date"
	else
		log "vscode: npm ci"
		(cd vscode && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.diffill-installed-lock)
	fi
	log "vscode: npm run package"
	(cd vscode && npm run --silent package >/dev/null)
	ls -l vscode/diffill.vsix
}

# Installs editors/vscode/e2e's locked tools into editors/.e2e/tools (a dot
# directory, so `go test ./...` never looks inside its node_modules).
setup_e2e_tools() {
	local dir=$EDITORS/.e2e/tools
	if [ -x "$dir/node_modules/.bin/code-server" ] && cmp -s vscode/e2e/package-lock.json "$dir/package-lock.json"; then
		log "e2e tools: up to date"
		return
	fi
	local major
	major=$(node -p 'process.versions.node.split(".")[0]')
	if [ "$major" != 20 ]; then
		echo "editors/ci.sh: code-server 4.100.3 installs only on Node 20 (this is Node $major); the VS Code end-to-end test needs it" >&2
		return 1
	fi
	apt_deps
	# @vscode/ripgrep's postinstall downloads rg from GitHub, which CI cannot reach: seed its cache with Debian's rg.
	local rgcache="${TMPDIR:-/tmp}/vscode-ripgrep-cache-1.15.11"
	mkdir -p "$rgcache"
	tar czf "$rgcache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$(dirname "$(command -v rg)")" rg
	rm -rf "$dir"
	mkdir -p "$dir"
	cp vscode/e2e/package.json vscode/e2e/package-lock.json "$dir/"
	log "e2e tools: npm ci (code-server 4.100.3, playwright-core)"
	# As root the postinstall wants unsafe-perm; node-pty's postinstall runs npx, which needs "yes" without a TTY.
	(cd "$dir" && npm_config_yes=true npm_config_unsafe_perm=true npm ci --no-audit --no-fund --loglevel=error)
}

case "${1:-}" in
setup)
	start=$SECONDS
	check_node
	setup_vscode
	if command -v chromium >/dev/null 2>&1 || [ "${DIFFILL_E2E:-}" = 1 ]; then
		setup_e2e_tools
	else
		log "chromium not installed: skipping the VS Code end-to-end tools (apt-get install -y chromium to run them)"
	fi
	log "setup took $((SECONDS - start)) s"
	;;
test)
	start=$SECONDS
	cd "$EDITORS/.."
	go test -count=1 ./editors/...
	log "tests took $((SECONDS - start)) s"
	;;
*)
	echo "usage: editors/ci.sh setup|test" >&2
	exit 2
	;;
esac
