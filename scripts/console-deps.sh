#!/usr/bin/env bash
# console-deps.sh installs what the web console's browser test needs on
# Debian 12 (run as root): node and npm, Debian's chromium, and the npm
# package playwright-core under test/console (no bundled browsers are
# downloaded). Idempotent; `make test` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if ((${#need_apt[@]})); then
	echo "console-deps: installing ${need_apt[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

want=$(node -p 'require("./test/console/package.json").dependencies["playwright-core"]')
have=$(node -p 'try { require("./test/console/node_modules/playwright-core/package.json").version } catch { "" }')
if [ "$have" != "$want" ]; then
	echo "console-deps: installing playwright-core $want"
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix test/console --no-audit --no-fund --loglevel=error
fi
