/**
 * An unconfined agent CLI does not die with the service: killed with -9, the service can no longer end it, and the
 * CLI goes on running its tool or stream, reparented to init (a confined one dies with bubblewrap's
 * --die-with-parent). So the CLI is started under this small shell watchdog, which the service holds instead:
 *
 * - fd 3 of the watchdog is a pipe whose only writer is the service. The service never writes to it; end of file
 *   on it means the service process is gone. The watchdog then kills every process carrying the agent's tag (its
 *   tools in their own process groups included, see process-scan.ts) and its own process group (the CLI), within a
 *   moment of the service's death, without polling.
 * - Otherwise it is transparent: the CLI gets the service's stdin, stdout and stderr, a SIGTERM to the watchdog
 *   reaches the CLI, and the watchdog exits with the CLI's exit code.
 *
 * A background command of a non-interactive shell reads /dev/null unless its stdin is redirected explicitly, hence
 * the copy of stdin on fd 4. The clean-up runs as `exec sh -c ...` so that it knows its own pid and spares itself
 * until its final group kill.
 */
const WATCHDOG_SCRIPT = `tag=$1; shift
exec 4<&0
"$@" <&4 4<&- 3<&- &
agent=$!
trap 'kill -TERM "$agent" 2>/dev/null' TERM INT
exec 4<&-
{
  while read -r _ <&3; do :; done
  exec sh -c 'for f in $(grep -lsxz "AGENT_PROCESS_TAG=$1" /proc/[0-9]*/environ); do p=\${f#/proc/}; p=\${p%/environ}; [ "$p" = "$$" ] || kill -KILL "$p" 2>/dev/null; done; kill -KILL 0' agent-watchdog "$tag"
} &
watcher=$!
code=0
while :; do
  wait "$agent"; code=$?
  kill -0 "$agent" 2>/dev/null || break
done
if kill -0 "$PPID" 2>/dev/null; then kill "$watcher" 2>/dev/null; else wait "$watcher"; fi
exit $code
`;

/** The command line that runs `command args` under the watchdog; the spawn must give it a pipe as fd 3. */
export function underWatchdog(tag: string, command: string, args: string[]): { command: string; args: string[] } {
  return { command: '/bin/sh', args: ['-c', WATCHDOG_SCRIPT, 'agent-watchdog', tag, command, ...args] };
}
