#!/bin/sh
# embed.sh: write C source defining a string constant per file: embed.sh FILE NAME [FILE NAME ...]
set -e
echo "/* Generated from $1 and the other files named by tests/tools/embed.sh: do not edit. */"
while [ $# -ge 2 ]; do
	echo "extern const char $2[];"
	echo "const char $2[] ="
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/\t"/' -e 's/$/\\n"/' "$1"
	echo ";"
	shift 2
done
