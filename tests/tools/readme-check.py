#!/usr/bin/python3
"""readme-check.py: run the shell blocks of a README and compare what they print with what it shows.

usage: readme-check.py [--timeout SECONDS] README

Run it in an empty directory, with the tools on PATH: every checked block
runs there, in order, in one bash, so that a block sees the files, the
variables and the background jobs of the blocks before it. It prints one
report per difference and a summary, and exits 0 when the README shows
exactly what the commands print, 1 when it does not, 2 when the README
breaks the convention below (or on a usage error).

The convention:

- A shell example is a fenced block whose info string is "sh". Its lines
  that start with "$ " are commands; a command goes on over the next lines
  while a line ends in "\\", "|" or "&&". The lines after a command, up to
  the next command or the end of the block, are its expected output:
  standard output and standard error together, as a terminal shows them.
  A command with no lines after it must print nothing.
- Output is compared byte for byte, except that "..." in an expected line
  matches any text within that line (the line "..." matches exactly one
  line). It is for what legitimately varies from run to run (times,
  rates, ids made from the clock), nothing else.
- A command that exits with a status other than 0 is a difference (the
  bash runs with pipefail, and LC_ALL=C).
- A command that ends in "&" runs in the background. Before the next
  command the checker waits (10 s at most) until it has printed as many
  lines as the README shows for it; what it prints is compared when it has
  stopped. "kill %N" also waits for the job to end, so that its port is
  free for the next block. Background jobs still running when the README
  ends are stopped.
- Every "127.0.0.1:PORT" in a command is a free loopback port of the
  checker's choosing (one for each PORT the README names), so that the
  test never collides with a server that is already there; the output is
  compared with PORT in its place.
- An HTML comment just before a fence (blank lines between are allowed)
  says how the block is treated:
    <!-- readme-test: skip (REASON) -->  the block is not run (installs,
        long runs, things that need root or a network service); the
        reason is required, and the summary lists every skipped block
        with it.
    <!-- readme-test: file NAME -->  the block (of any language) is the
        content of the file NAME, written into the directory at that point
        for the commands after it.
- A "$ " line in a fenced block of another language, or a fenced block in
  bash, shell, console or zsh, is an error: every shell example is a
  checked (or explicitly skipped) "sh" block.
"""
import difflib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DIRECTIVE = re.compile(r'^\s*<!--\s*readme-test:\s*(.*?)\s*-->\s*$')
FENCE = re.compile(r'^(```+|~~~+)\s*([^`\s]*)')
LOOPBACK = re.compile(r'127\.0\.0\.1:(\d+)')
SHELLISH = {'bash', 'shell', 'console', 'zsh', 'shell-session'}
WAIT_STEPS = 500  # of 20 ms: how long a background command may take to print


class ConventionError(Exception):
    pass


class Command:
    def __init__(self, block, line, text):
        self.block = block      # the README line of the block's fence
        self.line = line        # the README line of the "$ " line
        self.text = text        # the command, "$ " taken off, lines joined by newlines
        self.expected = []      # the expected output lines
        self.background = False


class Block:
    def __init__(self, line, info, lines, directive):
        self.line = line        # the README line of the opening fence
        self.info = info
        self.lines = lines      # [(README line, text)]
        self.directive = directive


def parse_blocks(path):
    """The fenced blocks of a README, each with the directive before it."""
    with open(path, encoding='utf-8') as f:
        text = f.read().split('\n')
    blocks = []
    directive = None
    i = 0
    while i < len(text):
        line = text[i]
        m = FENCE.match(line)
        if m:
            fence, info = m.group(1), m.group(2)
            start = i + 1
            body = []
            i += 1
            close = re.compile(r'\s{0,3}%s{%d,}\s*' % (re.escape(fence[0]), len(fence)))
            while i < len(text) and not close.fullmatch(text[i]):
                body.append((i + 1, text[i]))
                i += 1
            if i >= len(text):
                raise ConventionError('%s:%d: the block is never closed' % (path, start))
            blocks.append(Block(start, info, body, directive))
            directive = None
            i += 1
            continue
        d = DIRECTIVE.match(line)
        if d:
            directive = (i + 1, d.group(1))
        elif line.strip():
            if 'readme-test' in line:
                raise ConventionError('%s:%d: not a readme-test directive: %s' % (path, i + 1, line))
            directive = None
        i += 1
    return blocks


def continues(line):
    s = line.rstrip()
    return s.endswith('\\') or s.endswith('|') or s.endswith('&&')


def parse_commands(path, block):
    """The commands of an sh block, with their expected output."""
    cmds = []
    lines = block.lines
    k = 0
    while k < len(lines):
        n, line = lines[k]
        if line.startswith('$ '):
            text = [line[2:]]
            while continues(text[-1]):
                k += 1
                if k >= len(lines):
                    raise ConventionError('%s:%d: the command goes on past the end of the block' % (path, n))
                text.append(lines[k][1])
            c = Command(block.line, n, '\n'.join(text))
            c.background = c.text.rstrip().endswith('&') and not c.text.rstrip().endswith('&&')
            cmds.append(c)
        elif line == '$':
            raise ConventionError('%s:%d: an empty command' % (path, n))
        else:
            if not cmds:
                raise ConventionError('%s:%d: output before any command (a command starts with "$ ")' %
                                      (path, n))
            cmds[-1].expected.append(line)
        k += 1
    if not cmds:
        raise ConventionError('%s:%d: an sh block with no command (a command starts with "$ ")' %
                              (path, block.line))
    return cmds


def plan(path):
    """The README's steps in order: ('file', block, name) and ('cmd', Command); and the skips."""
    steps = []
    skips = []
    for b in parse_blocks(path):
        kind = arg = None
        if b.directive:
            dline, d = b.directive
            m = re.fullmatch(r'skip\s*\((.+)\)', d)
            if m:
                kind, arg = 'skip', m.group(1).strip()
            else:
                m = re.fullmatch(r'file\s+(\S+)', d)
                if not m:
                    raise ConventionError('%s:%d: unknown directive "%s" (skip (REASON) or file NAME)' %
                                          (path, dline, d))
                kind, arg = 'file', m.group(1)
        if kind == 'file':
            steps.append(('file', b, arg))
            continue
        if b.info in SHELLISH:
            raise ConventionError('%s:%d: a "%s" block: shell examples are "sh" blocks' %
                                  (path, b.line, b.info))
        if b.info != 'sh':
            for n, line in b.lines:
                if line.startswith('$ '):
                    raise ConventionError('%s:%d: a command in a block that is not "sh"' % (path, n))
            continue
        cmds = parse_commands(path, b)
        if kind == 'skip':
            skips.append((b, arg, cmds))
            continue
        for c in cmds:
            steps.append(('cmd', c))
    return steps, skips


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


PRELUDE = r'''set -o pipefail
__rc_dir=%s
# kill %%N waits for the job, so that what it held (a port) is free after.
kill() {
	builtin kill "$@" || return
	local a
	for a; do case $a in %%*) wait "$a" 2>/dev/null ;; esac; done
	return 0
}
# Wait until the file has $2 lines, or the job $3 has ended.
__rc_wait() {
	local i
	for ((i = 0; i < %d; i++)); do
		[ "$(wc -l <"$1")" -ge "$2" ] && return 0
		builtin kill -0 "$3" 2>/dev/null || return 0
		sleep 0.02
	done
}
__rc_stop() {
	local p
	for p in $(jobs -p); do builtin kill "$p" 2>/dev/null; done
	wait
}
trap __rc_stop EXIT
'''


def script(steps, tmp, ports):
    out = [PRELUDE % (quote(tmp), WAIT_STEPS)]
    for i, step in enumerate(steps):
        out.append('echo %d >"$__rc_dir/at"' % i)
        if step[0] == 'file':
            _, b, name = step
            with open(os.path.join(tmp, 'file.%d' % i), 'w', encoding='utf-8') as f:
                f.write(''.join(text + '\n' for _, text in b.lines))
            out.append('cp "$__rc_dir/file.%d" %s' % (i, quote(name)))
            continue
        c = step[1]
        text = LOOPBACK.sub(lambda m: '127.0.0.1:%d' % ports[m.group(1)], c.text)
        out.append('{ %s\n} >"$__rc_dir/%d.out" 2>&1 </dev/null' % (text, i))
        if c.background:
            out.append('__rc_wait "$__rc_dir/%d.out" %d $!' % (i, len(c.expected)))
            out.append('echo 0 >"$__rc_dir/%d.st"' % i)
        else:
            out.append('echo $? >"$__rc_dir/%d.st"' % i)
    out.append('echo done >"$__rc_dir/at"')
    return '\n'.join(out) + '\n'


def line_matches(want, got):
    if '...' not in want:
        return want == got
    pattern = '.*'.join(re.escape(p) for p in want.split('...'))
    return re.fullmatch(pattern, got, re.S) is not None


def compare(expected, actual):
    """None when the output is the expected one, else a diff."""
    complete = actual == '' or actual.endswith('\n')
    got = actual.split('\n')
    if got and got[-1] == '':
        got.pop()
    if complete and len(got) == len(expected) and all(
            line_matches(w, g) for w, g in zip(expected, got)):
        return None
    # Show a line that its pattern matches as the pattern, so that the
    # diff has only the lines that differ.
    shown = [expected[k] if k < len(expected) and line_matches(expected[k], g) else g
             for k, g in enumerate(got)]
    diff = list(difflib.unified_diff([w + '\n' for w in expected], [s + '\n' for s in shown],
                                     'expected (README)', 'actual', lineterm='\n', n=2))
    text = ''.join(diff)
    if not complete:
        text += '\\ the actual output does not end in a newline\n'
    return text


def show_command(c):
    return '$ ' + c.text


def main():
    args = sys.argv[1:]
    timeout = 120.0
    if len(args) >= 2 and args[0] == '--timeout':
        timeout = float(args[1])
        args = args[2:]
    if len(args) != 1 or args[0].startswith('-'):
        print('usage: readme-check.py [--timeout SECONDS] README', file=sys.stderr)
        return 2
    path = args[0]
    name = path
    try:
        steps, skips = plan(path)
    except (ConventionError, OSError) as e:
        print('readme-check: %s' % e, file=sys.stderr)
        return 2
    cmds = [s[1] for s in steps if s[0] == 'cmd']
    bad = False
    for c in cmds:
        r = subprocess.run(['bash', '-n', '-c', c.text], capture_output=True, text=True)
        if r.returncode != 0:
            print('readme-check: %s:%d: not a shell command: %s' % (name, c.line, r.stderr.strip()),
                  file=sys.stderr)
            bad = True
    if bad:
        return 2
    ports = {}
    for c in cmds:
        for p in LOOPBACK.findall(c.text):
            if p not in ports:
                ports[p] = free_port()
    back = {'127.0.0.1:%d' % v: '127.0.0.1:%s' % k for k, v in ports.items()}

    tmp = tempfile.mkdtemp(prefix='readme-check.')
    try:
        with open(os.path.join(tmp, 'run.sh'), 'w', encoding='utf-8') as f:
            f.write(script(steps, tmp, ports))
        env = dict(os.environ, LC_ALL='C')
        t0 = time.monotonic()
        with open(os.path.join(tmp, 'shell.log'), 'wb') as log:
            p = subprocess.Popen(['bash', os.path.join(tmp, 'run.sh')], stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
            timed_out = False
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
        # Whatever the run left behind (it should be nothing) is stopped.
        left = False
        try:
            os.killpg(p.pid, 0)
            left = True
            os.killpg(p.pid, signal.SIGTERM)
            time.sleep(0.2)
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if timed_out:
            p.wait()
        elapsed = time.monotonic() - t0

        failures = 0
        if timed_out:
            try:
                at = open(os.path.join(tmp, 'at')).read().strip()
            except OSError:
                at = ''
            where = ''
            if at.isdigit() and steps[int(at)][0] == 'cmd':
                c = steps[int(at)][1]
                where = ' in the command at %s:%d:\n%s' % (name, c.line, show_command(c))
            print('readme-check: stopped after %g s%s' % (timeout, where))
            failures += 1
        elif left:
            print('readme-check: processes of the run were still there after it; stopped')
            failures += 1
        for i, step in enumerate(steps):
            if step[0] != 'cmd':
                continue
            c = step[1]
            try:
                with open(os.path.join(tmp, '%d.out' % i), 'rb') as f:
                    actual = f.read().decode('utf-8', 'replace')
                with open(os.path.join(tmp, '%d.st' % i)) as f:
                    status = f.read().strip()
            except OSError:
                if not timed_out:
                    print('readme-check: %s:%d: the command did not run' % (name, c.line))
                    failures += 1
                continue
            for k, v in back.items():
                actual = actual.replace(k, v)
            diff = compare(c.expected, actual)
            if diff is None and status == '0':
                continue
            failures += 1
            print('%s:%d: in the block at line %d:\n%s' % (name, c.line, c.block, show_command(c)))
            if status != '0':
                print('exit status %s' % status)
            if diff is not None:
                print(diff, end='')
            print()
        log = open(os.path.join(tmp, 'shell.log'), encoding='utf-8', errors='replace').read()
        if log and p.returncode != 0:
            print('readme-check: the shell said:\n%s' % log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    nblocks = len({c.block for c in cmds})
    print('readme-check: %s: %d commands in %d blocks, %d differ (%.1f s); %d blocks skipped%s' %
          (name, len(cmds), nblocks, failures, elapsed, len(skips), ':' if skips else ''))
    for b, reason, _ in skips:
        print('  %s:%d: skip (%s)' % (name, b.line, reason))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
