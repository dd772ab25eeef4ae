#!/bin/sh
# Gives every workspace member empty sources (and every test or bench target its
# manifest names), so the dependencies build in a layer of their own, before any of
# txlab's sources are copied in. Run from the workspace root, with only the
# manifests present.
set -eu
for manifest in $(find . -name Cargo.toml -not -path './Cargo.toml' -not -path './target/*'); do
    crate=$(dirname "$manifest")
    mkdir -p "$crate/src"
    [ -f "$crate/src/lib.rs" ] || : > "$crate/src/lib.rs"
    # The crates under shared/ are libraries only; every other member has a binary.
    case "$crate" in ./shared | ./shared/*) is_lib=yes ;; *) is_lib=no ;; esac
    if grep -q '^\[\[bin\]\]' "$manifest" || [ "$is_lib" = no ]; then
        [ -f "$crate/src/main.rs" ] || echo 'fn main() {}' > "$crate/src/main.rs"
    fi
    # Targets declared with an explicit path must exist for cargo to read the manifest.
    grep -A3 -E '^\[\[(test|bench|bin)\]\]' "$manifest" | sed -n 's/^path *= *"\(.*\)"/\1/p' | while read -r path; do
        mkdir -p "$crate/$(dirname "$path")"
        [ -f "$crate/$path" ] || echo 'fn main() {}' > "$crate/$path"
    done
done
