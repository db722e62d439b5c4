#!/bin/sh
# completion.sh: write the bash completion of reco's tools, from each built tool's --options.
#
# usage: completion.sh BINDIR TOOL...
set -eu
bin=$1
shift
cat <<'HEAD'
# bash completion for reco's tools: their options (from each tool's
# --options, when it was built), the values of the options that take a
# word from a list, and file names elsewhere.
_reco()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev= opts=
	[ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD-1]}
	case $prev in
	-I|--input-format) opts='ndjson avro auto' ;;
	-O|--output-format) opts='ndjson avro' ;;
	--codec) opts='null deflate' ;;
	--shard-by) opts='hash murmur2 kafka crc32' ;;
	--regime) opts='shop sessions history' ;;
	--from) opts='event csv json access-log kcat-json' ;;
	--payload) opts='event csv json access-log' ;;
	--format) opts='event csv access-log' ;;
	--emit) opts='every changed none' ;;
	--count-norm) opts='log percentile none' ;;
	--exclude-seen) opts='auto none purchased all' ;;
	esac
	if [ -n "$opts" ]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		return
	fi
	case $cur in
	-*) ;;
	*) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	esac
	case ${COMP_WORDS[0]##*/} in
HEAD
for t in "$@"; do
	printf "\t%s) opts='%s' ;;\n" "$t" "$("$bin/$t" --options | sed 's/=$//' | tr '\n' ' ' | sed 's/ $//')"
done
cat <<TAIL
	esac
	COMPREPLY=(\$(compgen -W "\$opts" -- "\$cur"))
}
complete -o default -F _reco $*
TAIL
