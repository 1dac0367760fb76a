'use strict';
// `make install` as a packager runs it (DESTDIR=<tmp> PREFIX=/usr), against the build directory of $REALTIME_BIN so
// the objects `make` already built are reused: the installed files, the shared library's soname and exports,
// examples/seed_usage.c built with `pkg-config --cflags --libs realtime` against librealtime.so and run, the man
// pages (rendered when groff is there), the systemd unit (`systemd-analyze verify` when it is there), the example
// configuration, the readiness messages a Type=notify unit waits for, and `make uninstall`.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { BIN, startServer } = require('./lib/server');
const { waitFor } = require('./lib/util');

const ROOT = path.resolve(__dirname, '../..');

/** Whether a program is on PATH. */
function have(prog) {
  return spawnSync('sh', ['-c', `command -v ${prog}`], { encoding: 'utf8' }).status === 0;
}

/** The environment for a nested make: without the outer make's jobserver flags (`make test` runs this file). */
function makeEnv() {
  const env = { ...process.env };
  for (const k of ['MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES', 'MAKE_TERMOUT', 'MAKE_TERMERR'])
    delete env[k];
  return env;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 45000, ...opts });
  if (r.error)
    throw r.error;
  return r;
}

function ok(r, what) {
  assert.equal(r.status, 0, `${what} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

// The build directory holding $REALTIME_BIN, relative to the repo (build/release in `make test`), so nothing is
// compiled again; a binary from elsewhere gets a build directory of its own in the temp tree.
function buildDir(tmp) {
  const rel = path.relative(ROOT, path.dirname(path.resolve(BIN)));
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : path.join(tmp, 'build');
}

describe('make install', { timeout: 60000 }, () => {
  let tmp;
  let dest;
  let B;
  let version;
  const make = (...args) => run('make', ['-C', ROOT, '--no-print-directory', `-j${os.availableParallelism()}`, `B=${B}`, ...args],
    { env: makeEnv() });
  const inTree = (p) => path.join(dest, p);

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'realtime-install-'));
    dest = path.join(tmp, 'dest');
    B = buildDir(tmp);
    version = ok(run(BIN, ['version']), 'realtime version').stdout.trim().replace(/^realtime /, '');
    ok(make('install', `DESTDIR=${dest}`, 'PREFIX=/usr'), 'make install');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('installs the binary, both libraries, the headers, realtime.pc, the man pages, the unit and the example', () => {
    const want = ['usr/bin/realtime', 'usr/lib/librealtime.a', `usr/lib/librealtime.so.${version}`, 'usr/lib/librealtime.so.0',
      'usr/lib/librealtime.so', 'usr/include/realtime.h', 'usr/lib/pkgconfig/realtime.pc', 'usr/share/man/man1/realtime.1',
      'usr/share/man/man5/realtime.json.5', 'usr/lib/systemd/system/realtime.service', 'usr/share/doc/realtime/realtime.json'];
    for (const h of fs.readdirSync(path.join(ROOT, 'include/realtime')))
      want.push(`usr/include/realtime/${h}`);
    for (const f of want)
      assert.ok(fs.existsSync(inTree(f)), `${f} installed`);
    assert.equal(fs.statSync(inTree('usr/bin/realtime')).mode & 0o777, 0o755);
    assert.equal(ok(run(inTree('usr/bin/realtime'), ['version']), 'installed realtime').stdout.trim(), `realtime ${version}`);
  });

  it('gives the shared library a soname, links the names to it and exports the rt_ API only', () => {
    const lib = inTree('usr/lib');
    assert.equal(fs.readlinkSync(path.join(lib, 'librealtime.so')), 'librealtime.so.0');
    assert.equal(fs.readlinkSync(path.join(lib, 'librealtime.so.0')), `librealtime.so.${version}`);
    const dyn = ok(run('readelf', ['-d', path.join(lib, `librealtime.so.${version}`)]), 'readelf -d').stdout;
    assert.match(dyn, /\(SONAME\)\s+Library soname: \[librealtime\.so\.0\]/);
    for (const dep of ['libuv', 'libjansson', 'libjwt', 'libhiredis', 'libssl', 'libcrypto'])
      assert.match(dyn, new RegExp(`\\(NEEDED\\).*\\[${dep}\\.so`), `librealtime.so needs ${dep}`);
    const syms = ok(run('readelf', ['--dyn-syms', '-W', path.join(lib, `librealtime.so.${version}`)]), 'readelf --dyn-syms').stdout
      .split('\n').filter((l) => / GLOBAL /.test(l) && !/ UND /.test(l)).map((l) => l.trim().split(/\s+/)[7]);
    assert.ok(syms.includes('rt_broadcaster_new') && syms.includes('rt_event_new'), 'the public API is exported');
    assert.deepEqual(syms.filter((s) => !/^rt_[a-z]/.test(s)), [], 'nothing but rt_ symbols (no rt__, no llhttp_)');
  });

  it('writes realtime.pc for the prefix it was given', () => {
    const pc = fs.readFileSync(inTree('usr/lib/pkgconfig/realtime.pc'), 'utf8');
    assert.match(pc, /^prefix=\/usr$/m);
    assert.match(pc, /^libdir=\/usr\/lib$/m);
    assert.match(pc, new RegExp(`^Version: ${version.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(pc, /^Libs: -L\$\{libdir\} -lrealtime$/m);
    assert.match(pc, /^Requires: jansson$/m, 'the public headers use json_t');
    assert.match(pc, /^Requires\.private: libuv libjwt hiredis libssl libcrypto zlib$/m);
    assert.match(pc, /^Libs\.private: -lm -pthread$/m);
  });

  it('builds examples/seed_usage.c with pkg-config against librealtime.so, and it runs', () => {
    const env = { ...process.env, PKG_CONFIG_PATH: inTree('usr/lib/pkgconfig'), PKG_CONFIG_SYSROOT_DIR: dest };
    assert.equal(ok(run('pkg-config', ['--modversion', 'realtime'], { env }), 'pkg-config --modversion').stdout.trim(), version);
    const flags = ok(run('pkg-config', ['--cflags', '--libs', 'realtime'], { env }), 'pkg-config --cflags --libs').stdout
      .trim().split(/\s+/);
    assert.ok(flags.includes(`-I${inTree('usr/include')}`) && flags.includes(`-L${inTree('usr/lib')}`), flags.join(' '));
    const exe = path.join(tmp, 'seed_usage');
    // Only the installed headers: no -Iinclude -Isrc from the tree, so the example must stick to the public API.
    ok(run('cc', ['-std=c17', '-Wall', '-Werror', '-o', exe, path.join(ROOT, 'examples/seed_usage.c'), ...flags]), 'cc');
    assert.match(ok(run('readelf', ['-d', exe]), 'readelf').stdout, /\(NEEDED\).*\[librealtime\.so\.0\]/,
      'linked against the shared library, not the archive');
    const lenv = { ...process.env, LD_LIBRARY_PATH: inTree('usr/lib') };
    if (have('ldd'))
      assert.match(run('ldd', [exe], { env: lenv }).stdout, new RegExp(`librealtime\\.so\\.0 => ${inTree('usr/lib')}/`));
    const r = ok(run(exe, [], { env: lenv, timeout: 10000 }), 'seed_usage');
    assert.match(r.stdout, /^OK: 2 deliveries/m);
  });

  it('installs with PREFIX alone too: realtime.pc points there and needs no sysroot', () => {
    const prefix = path.join(tmp, 'prefix');
    ok(make('install', `PREFIX=${prefix}`), 'make install PREFIX=');
    const env = { ...process.env, PKG_CONFIG_PATH: path.join(prefix, 'lib/pkgconfig') };
    assert.equal(ok(run('pkg-config', ['--variable=prefix', 'realtime'], { env }), 'pkg-config').stdout.trim(), prefix);
    const exe = path.join(tmp, 'seed_usage_prefix');
    const flags = ok(run('pkg-config', ['--cflags', '--libs', 'realtime'], { env }), 'pkg-config').stdout.trim().split(/\s+/);
    ok(run('cc', ['-std=c17', '-o', exe, path.join(ROOT, 'examples/seed_usage.c'), ...flags]), 'cc');
    ok(run(exe, [], { env: { ...process.env, LD_LIBRARY_PATH: path.join(prefix, 'lib') }, timeout: 10000 }), 'seed_usage');
    ok(make('uninstall', `PREFIX=${prefix}`), 'make uninstall PREFIX=');
  });

  it('generates the man pages from the tables behind --help', () => {
    const page1 = fs.readFileSync(inTree('usr/share/man/man1/realtime.1'), 'utf8');
    const page5 = fs.readFileSync(inTree('usr/share/man/man5/realtime.json.5'), 'utf8');
    assert.equal(page1, ok(run(BIN, ['man', '1']), 'realtime man 1').stdout, 'the installed page is what the binary prints');
    // Every flag of `serve --help` and every command of `--help` is in realtime(1); every key in realtime.json(5).
    const help = ok(run(BIN, ['serve', '--help']), 'serve --help').stdout;
    const flags = [...help.matchAll(/^ {2}--([a-z-]+) /gm)].map((m) => m[1]);
    assert.ok(flags.length > 30, `flags in --help: ${flags.length}`);
    for (const f of flags) {
      assert.ok(page1.includes(`\\fB\\-\\-${f.replace(/-/g, '\\-')}\\fR`), `realtime(1) documents --${f}`);
      if (f !== 'config')
        assert.ok(page5.includes(`\\fB${f.replace(/-/g, '_')}\\fR`), `realtime.json(5) documents ${f.replace(/-/g, '_')}`);
    }
    for (const m of ok(run(BIN, ['--help']), '--help').stdout.matchAll(/^ {2}([a-z-]+) {2,}/gm))
      assert.ok(page1.includes(`.SS ${m[1].replace(/-/g, '\\-')}\n`), `realtime(1) has the command ${m[1]}`);
    assert.notEqual(run(BIN, ['man', '7']).status, 0, 'an unknown section is a usage error');
  });

  it('writes man pages that are valid roff', (t) => {
    for (const [file, title] of [['usr/share/man/man1/realtime.1', 'REALTIME(1)'],
      ['usr/share/man/man5/realtime.json.5', 'REALTIME.JSON(5)']]) {
      const text = fs.readFileSync(inTree(file), 'utf8');
      // Without groff, at least the structure: a .TH, a NAME section, and only requests the man macros know.
      assert.match(text, /^\.TH [A-Z.]+ [15] /m);
      assert.match(text, /^\.SH NAME\n[a-z.]+ \\- /m);
      const known = new Set(['TH', 'SH', 'SS', 'TP', 'PP', 'B', 'BR', 'nf', 'fi', 'br', 'nh', 'ad', '\\"']);
      for (const line of text.split('\n').filter((l) => l.startsWith('.')))
        assert.ok(known.has(line.slice(1).split(/[ \n]/)[0]), `known request: ${line}`);
      if (!have('groff'))
        continue;
      const g = ok(run('groff', ['-man', '-Tutf8', '-ww', '-z', inTree(file)]), `groff ${file}`);
      assert.equal(g.stderr, '', `groff warnings for ${file}`);
      const rendered = run('groff', ['-man', '-Tutf8', '-P-cbou', inTree(file)]).stdout;
      assert.ok(rendered.includes(title), `${file} renders with its title`);
      if (have('man'))
        assert.ok(ok(run('man', ['-l', '-P', 'cat', inTree(file)], { env: { ...process.env, MANWIDTH: '100' } }), 'man -l')
          .stdout.includes(title));
    }
    if (!have('groff'))
      t.skip('groff not installed: checked the roff structure only');
  });

  it('installs a hardened Type=notify unit that systemd-analyze accepts', (t) => {
    const shipped = fs.readFileSync(path.join(ROOT, 'contrib/realtime.service'), 'utf8');
    const unit = fs.readFileSync(inTree('usr/lib/systemd/system/realtime.service'), 'utf8');
    for (const line of ['Type=notify', 'DynamicUser=yes', 'ProtectSystem=strict', 'NoNewPrivileges=yes', 'LimitNOFILE=65536',
      'SupplementaryGroups=realtime', 'ExecReload=/bin/kill -HUP $MAINPID'])
      assert.ok(unit.split('\n').includes(line), `unit has ${line}`);
    assert.match(shipped, /^ExecStart=\/usr\/local\/bin\/realtime serve --config \/etc\/realtime\/realtime\.json$/m);
    assert.equal(fs.readFileSync(inTree('usr/lib/sysusers.d/realtime.conf'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'))[0],
      'g realtime -', 'the group that may read the configuration');
    assert.match(unit, /^ExecStart=\/usr\/bin\/realtime serve /m, 'ExecStart follows BINDIR');
    if (!have('systemd-analyze')) {
      t.skip('systemd-analyze not installed (package systemd): checked the unit text only');
      return;
    }
    // verify wants ExecStart's binary and the Documentation= pages to exist: point both into the installed tree.
    const dir = path.join(tmp, 'unit');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'realtime.service');
    fs.writeFileSync(file, unit.replace(/^ExecStart=\/usr\/bin\/realtime/m, `ExecStart=${inTree('usr/bin/realtime')}`));
    const r = run('systemd-analyze', ['verify', file], { env: { ...process.env, MANPATH: inTree('usr/share/man'), SYSTEMD_LOG_LEVEL: 'notice' } });
    assert.equal(r.status, 0, `systemd-analyze verify:\n${r.stdout}\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /realtime\.service/, r.stderr);
  });

  it('ships an example configuration that does not load until its placeholders are replaced', () => {
    const shipped = fs.readFileSync(path.join(ROOT, 'contrib/realtime.json'), 'utf8');
    assert.equal(fs.readFileSync(inTree('usr/share/doc/realtime/realtime.json'), 'utf8'), shipped);
    const as_is = run(BIN, ['check-config', '--config', path.join(ROOT, 'contrib/realtime.json')]);
    assert.equal(as_is.status, 1, 'the placeholders are refused, so nobody runs with a published key');
    assert.match(as_is.stderr, /api_keys/);
    const cfg = JSON.parse(shipped);
    assert.ok(Array.isArray(cfg.namespaces) && cfg.namespaces.length > 0, 'namespaces');
    assert.equal(cfg.insecure, undefined, 'secure as written');
    cfg.api_keys = ['a'.repeat(64)];
    cfg.token_secret = 'b'.repeat(64);
    const file = path.join(tmp, 'realtime.json');
    fs.writeFileSync(file, JSON.stringify(cfg));
    const c = ok(run(BIN, ['check-config', '--config', file]), 'check-config of the filled-in example');
    assert.match(c.stderr, /configuration ok/);
  });

  // What systemd does for Type=notify, played by a small C receiver on a datagram socket (node has no AF_UNIX dgram).
  it('tells $NOTIFY_SOCKET READY=1 once it listens and STOPPING=1 on SIGTERM', async () => {
    const src = path.join(tmp, 'notify_recv.c');
    fs.writeFileSync(src, `#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
int main(int argc, char **argv) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) return 2;
    printf("bound\\n"); fflush(stdout);
    char buf[512];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n < 0) return 1;
        buf[n] = 0;
        for (char *p = buf; *p; p++) if (*p == '\\n') *p = '|';
        printf("%s\\n", buf); fflush(stdout);
        if (strstr(buf, "STOPPING=1")) return 0;
    }
}
`);
    const exe = path.join(tmp, 'notify_recv');
    ok(run('cc', ['-o', exe, src]), 'cc notify_recv');
    const sock = path.join(tmp, 'notify.sock');
    const recv = spawn(exe, [sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    recv.stdout.on('data', (d) => { out += d; });
    const done = new Promise((resolve) => recv.on('exit', resolve));
    try {
      await waitFor(() => out.includes('bound\n'), { timeout: 5000, message: 'the receiver to bind' });
      const srv = await startServer({ env: { NOTIFY_SOCKET: sock } });
      await waitFor(() => out.includes('READY=1'), { timeout: 5000, message: 'READY=1' });
      assert.match(out, new RegExp(`READY=1\\|STATUS=listening on 127\\.0\\.0\\.1:${srv.port}`));
      assert.doesNotMatch(out, /STOPPING/);
      await srv.stop();
      assert.equal(await done, 0, `the receiver saw STOPPING=1:\n${out}`);
    } finally {
      recv.kill('SIGKILL');
    }
  });

  it('make uninstall removes every file it installed', () => {
    ok(make('uninstall', `DESTDIR=${dest}`, 'PREFIX=/usr'), 'make uninstall');
    const left = ok(run('find', [dest, '!', '-type', 'd']), 'find').stdout.trim();
    assert.equal(left, '', `left behind:\n${left}`);
  });
});
