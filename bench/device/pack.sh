#!/usr/bin/env bash
# Packs what bench/device/run.sh needs on a machine that has neither Go nor
# an MPI: static parley binaries, the C reference benchmark built against
# Open MPI, and a relocatable copy of this machine's Debian Open MPI (run
# there with OPAL_PREFIX) with every shared library it loads.
#
#   bench/device/pack.sh [DIR]     # default DIR: out/device
#
# Then carry DIR to the other machine and run DIR/run.sh there.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-out/device}
rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/ompi/bin" "$dir/ompi/deps"

CGO_ENABLED=0 go build -trimpath -o "$dir/bin/mpirun" ./mpirun
CGO_ENABLED=0 go build -trimpath -o "$dir/bin/bench" ./bench
CGO_ENABLED=0 go build -trimpath -o "$dir/bin/hello" ./examples/hello

# The C reference, built by the same code path "bench compare" uses.
go build -o "$dir/bin/bench-host" ./bench
"$dir/bin/bench-host" reference "$dir/bin" >/dev/null
rm "$dir/bin/bench-host"
mpicc.openmpi -O2 -o "$dir/bin/hello_openmpi" bench/c/hello.c

# Open MPI: the files of its Debian packages keep their places below a new
# prefix (/usr becomes $dir/ompi), which is what OPAL_PREFIX relocates.
ompi=$dir/ompi
for pkg in openmpi-bin libopenmpi3 openmpi-common libpmix2; do
  dpkg -L "$pkg" 2>/dev/null | while read -r f; do
    case $f in /usr/share/doc/* | /usr/share/man/* | /usr/share/lintian/*) continue ;; esac
    [ -f "$f" ] || continue
    mkdir -p "$ompi$(dirname "${f#/usr}")"
    cp -a "$f" "$ompi${f#/usr}"
  done
done
cp -a /etc/openmpi "$ompi/etc" 2>/dev/null || true
ln -sf orterun "$ompi/bin/mpirun.openmpi"

# Every shared library those files load that a bare machine may lack
# (everything but the C library itself).
{
  echo "$dir/bin/osu_openmpi"
  echo "$dir/bin/hello_openmpi"
  echo "$ompi/bin/orterun"
  find "$ompi" -name '*.so*' -type f
} | while read -r f; do
  LD_LIBRARY_PATH=$ompi/lib/x86_64-linux-gnu:$ompi/lib/x86_64-linux-gnu/openmpi/lib ldd "$f" 2>/dev/null |
    awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
  case $(basename "$lib") in
    libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | ld-linux*) continue ;;
  esac
  case $lib in "$ompi"/*) continue ;; esac
  cp -L "$lib" "$ompi/deps/"
done

cp bench/device/run.sh "$dir/run.sh"
chmod +x "$dir/run.sh"
du -sh "$dir"
