#!/usr/bin/env bash
# Installs exprgrad into a staging directory and builds a consumer (1) from the installed headers,
# library and exprgrad.pc through pkg-config, and (2) as a Meson project with exprgrad as a subproject.
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

meson install -C "$build" --destdir "$tmp/stage" --no-rebuild --quiet
prefix=$(meson introspect "$build" --buildoptions | python3 -c \
    'import json,sys; o={x["name"]:x["value"] for x in json.load(sys.stdin)}; print(o["prefix"]); print(o["libdir"])')
pfx=$(echo "$prefix" | sed -n 1p)
libdir=$(echo "$prefix" | sed -n 2p)
case "$libdir" in /*) ;; *) libdir="$pfx/$libdir" ;; esac
pcdir="$tmp/stage$libdir/pkgconfig"
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --define-variable=prefix="$tmp/stage$pfx" --cflags --libs exprgrad)
echo "pkg-config flags: $flags"
# The README's command, exactly (no -std or other flag of our own): exprgrad.pc must carry everything.
# The staged exprgrad.pc is copied with its prefix pointing into the staging directory.
mkdir -p "$tmp/pc" "$tmp/readme"
sed "s|^prefix=.*|prefix=$tmp/stage$pfx|" "$pcdir/exprgrad.pc" >"$tmp/pc/exprgrad.pc"
cp "$src/tests/consumer/consumer.cpp" "$tmp/readme/prog.cpp"
if (cd "$tmp/readme" && export PKG_CONFIG_PATH="$tmp/pc" &&
    g++ prog.cpp $(pkg-config --cflags --libs exprgrad)) &&
    LD_LIBRARY_PATH="$tmp/stage$libdir" "$tmp/readme/a.out"; then
    passed=$((passed + 1))
else
    echo "FAIL: consumer built with the README's command against the installed files"
    failed=$((failed + 1))
fi
# A consumer without the exported flags is refused at compile time with a plain message.
if g++ -std=c++20 -fsyntax-only -I"$tmp/stage$pfx/include" "$src/tests/consumer/consumer.cpp" 2>"$tmp/err"; then
    echo "FAIL: a consumer without -march=x86-64-v3 / XTENSOR_USE_XSIMD compiled"
    failed=$((failed + 1))
elif grep -q "pkg-config --cflags exprgrad" "$tmp/err"; then
    passed=$((passed + 1))
else
    echo "FAIL: mismatched consumer refused without the expected message:"
    head -5 "$tmp/err"
    failed=$((failed + 1))
fi

mkdir -p "$tmp/app/subprojects"
cp "$src/tests/consumer/subproject_app/meson.build" "$tmp/app/"
cp "$src/tests/consumer/consumer.cpp" "$tmp/"
ln -s "$src" "$tmp/app/subprojects/exprgrad"
if meson setup "$tmp/app/build" "$tmp/app" >"$tmp/setup.log" 2>&1 && meson compile -C "$tmp/app/build" >"$tmp/compile.log" 2>&1 &&
    "$tmp/app/build/consumer"; then
    passed=$((passed + 1))
else
    echo "FAIL: consumer with exprgrad as a Meson subproject"
    tail -20 "$tmp/setup.log" "$tmp/compile.log" 2>/dev/null || true
    failed=$((failed + 1))
fi
echo "install_consumer: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
