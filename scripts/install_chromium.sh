#!/bin/sh
# Install Debian's `chromium`, which tests/test_reports.py uses to open the HTML report
# headless (the test is skipped without it). Installs only when it is missing and this
# machine allows it (root or password-less sudo, apt-get present); otherwise it prints why
# and exits 0: a missing browser must never fail the build.
set -u

for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if found=$(command -v "$name" 2>/dev/null); then
        echo "install_chromium: $found is already installed"
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no apt-get on this machine; install Chromium by hand to run the HTML report test"
    exit 0
fi

if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    SUDO="sudo -n"
else
    echo "install_chromium: not root and no password-less sudo; run 'sudo apt-get install chromium' to run the HTML report test"
    exit 0
fi

echo "install_chromium: installing chromium with apt-get (the HTML report test needs it)"
if $SUDO apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        chromium fonts-liberation >/dev/null; then
    echo "install_chromium: installed $(command -v chromium)"
else
    echo "install_chromium: apt-get could not install chromium (offline or no such package?); the HTML report test will be skipped"
fi
exit 0
