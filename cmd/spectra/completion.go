package main

import (
	"fmt"
	"os"
)

// commands are the CLI's commands, for the usage and shell completion.
var commands = []string{"serve", "token", "submit", "runs", "logs", "cancel", "pause", "resume", "retry",
	"replay", "audit", "projections", "bench", "completion", "recipes", "lots", "schedules"}

const bashCompletion = `# spectra completion for bash: source <(spectra completion bash)
_spectra() {
	local cur prev
	cur="${COMP_WORDS[COMP_CWORD]}"
	prev="${COMP_WORDS[COMP_CWORD-1]}"
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "%[1]s" -- "$cur"))
		return
	fi
	case "${COMP_WORDS[1]}" in
	submit)
		if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "ion rtp" -- "$cur")); return; fi
		if [ "$COMP_CWORD" -eq 3 ]; then COMPREPLY=($(compgen -f -X '!*.json' -- "$cur")); return; fi ;;
	completion)
		COMPREPLY=($(compgen -W "bash zsh" -- "$cur")); return ;;
	projections)
		if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "rebuild" -- "$cur")); return; fi ;;
	esac
	case "$prev" in
	--state) COMPREPLY=($(compgen -W "queued running paused completed failed cancelled retrying" -- "$cur")); return ;;
	--kind) COMPREPLY=($(compgen -W "ion rtp" -- "$cur")); return ;;
	--log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
	--log-level) COMPREPLY=($(compgen -W "debug info warn error" -- "$cur")); return ;;
	--role) COMPREPLY=($(compgen -W "admin engineer operator viewer" -- "$cur")); return ;;
	esac
	if [[ "$cur" == -* ]]; then
		COMPREPLY=($(compgen -W "$(spectra "${COMP_WORDS[1]}" -h 2>&1 | sed -n 's/^  \(-[a-z0-9-]*\).*/-\1/p')" -- "$cur"))
	fi
}
complete -o default -F _spectra spectra
`

const zshCompletion = `#compdef spectra
# spectra completion for zsh: spectra completion zsh > "${fpath[1]}/_spectra"
_spectra() {
	local -a cmds
	cmds=(%[1]s)
	if (( CURRENT == 2 )); then
		_describe 'command' cmds
		return
	fi
	case $words[2] in
	submit)
		if (( CURRENT == 3 )); then _values 'kind' ion rtp; return; fi
		if (( CURRENT == 4 )); then _files -g '*.json'; return; fi ;;
	completion) _values 'shell' bash zsh; return ;;
	projections) if (( CURRENT == 3 )); then _values 'action' rebuild; return; fi ;;
	esac
	case $words[CURRENT-1] in
	--state) _values 'state' queued running paused completed failed cancelled retrying; return ;;
	--kind) _values 'kind' ion rtp; return ;;
	--log-format) _values 'format' text json; return ;;
	--log-level) _values 'level' debug info warn error; return ;;
	--role) _values 'role' admin engineer operator viewer; return ;;
	esac
	if [[ $PREFIX == -* ]]; then
		local -a flags
		flags=(${(f)"$(spectra $words[2] -h 2>&1 | sed -n 's/^  \(-[a-z0-9-]*\).*/-\1/p')"})
		compadd -a flags
		return
	fi
	_files
}
compdef _spectra spectra
`

// runCompletion prints a shell's completion script.
func runCompletion(args []string) error {
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		fmt.Fprintln(os.Stderr, "usage: spectra completion bash|zsh\n  bash: source <(spectra completion bash)\n  zsh:  spectra completion zsh > \"${fpath[1]}/_spectra\"")
		return exitError{2}
	}
	words := ""
	for i, c := range commands {
		if i > 0 {
			words += " "
		}
		words += c
	}
	script := bashCompletion
	if args[0] == "zsh" {
		script = zshCompletion
	}
	fmt.Printf(script, words)
	return nil
}
