# bash completion for layerfs(1).
# Commands come from `layerfs --help`, each command's options from
# `layerfs CMD --help`, so they never fall behind the binary.

_layerfs_words()
{
	# the long and short options a --help text lists
	"$1" "${@:2}" --help 2>/dev/null |
		grep -oE '(^|[ ,])--?[A-Za-z][A-Za-z-]*(=false)?' |
		tr -d ' ,' | sort -u
}

_layerfs()
{
	local cur prev cmd bin=${COMP_WORDS[0]}
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	COMPREPLY=()
	if [ "$COMP_CWORD" -eq 1 ]; then
		local cmds
		cmds=$("$bin" --help 2>/dev/null |
			sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p')
		COMPREPLY=($(compgen -W "$cmds version" -- "$cur"))
		return 0
	fi
	cmd=${COMP_WORDS[1]}
	if [ "$cmd" = cache ] && [ "$COMP_CWORD" -ge 2 ] &&
		[[ "$cur" != -* ]]; then
		COMPREPLY=($(compgen -W "ls du prune clear" -- "$cur"))
		return 0
	fi
	case $prev in
	--cache | --upper | --lower | --cert-dir | -o | --output | --ci-config)
		COMPREPLY=($(compgen -f -- "$cur"))
		return 0
		;;
	--layers | --from | --to | --top | --ref | --platform | --creds | \
	--cache-max | --max-size | --owner | --tag | -t | --message | -m | \
	--format | --secrets | --min-efficiency | --max-wasted-bytes | \
	--max-wasted-percent)
		case $prev in
		--format) COMPREPLY=($(compgen -W "oci docker-archive" -- "$cur")) ;;
		--secrets) COMPREPLY=($(compgen -W "hidden all none" -- "$cur")) ;;
		esac
		return 0
		;;
	esac
	if [[ "$cur" == -* ]]; then
		COMPREPLY=($(compgen -W "$(_layerfs_words "$bin" "$cmd")" -- "$cur"))
		return 0
	fi
	# IMAGE and paths: files, and the transports skopeo and podman write
	COMPREPLY=($(compgen -f -- "$cur") $(compgen -W "oci: oci-archive: docker-archive: docker://" -- "$cur"))
	return 0
}
complete -o filenames -o nospace -F _layerfs layerfs
