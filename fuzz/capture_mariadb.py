#!/usr/bin/env python3
"""Captures real MariaDB packets for the codec's fixtures and fuzz seeds.

Usage: capture_mariadb.py PORT

PORT is a MariaDB 10.11 started as in shared/CRATES.md, with a user
app@'%' IDENTIFIED BY 'password', a database `shop` with
`t (id INT PRIMARY KEY, name VARCHAR(20), note TEXT)` holding a few rows,
a procedure `p()` that returns two result sets, and --local-infile=1.
It logs in like the proxy does (bit 0 set, no MariaDB extended
capabilities; once with and once without CLIENT_DEPRECATE_EOF), sends every
command whose reply shape the tracker knows, and writes each raw reply to
src/protocol/testdata/mariadb/NAME.EXPECT.{dep,old}.bin, then regenerates
the seed files fuzz/corpus/*/seed-*. The cli.*.bin fixtures beside them
were captured once from the `mariadb` 10.11 command-line client through a
logging TCP relay (it clears bit 0 and uses MariaDB's extended
capabilities, so only its handshake is kept), and mysql-crate.*.bin from
the `mysql` 28 crate the same way.
"""
import socket, struct, hashlib, sys, os
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = int(sys.argv[1])
PROXY_SUPPORTED = 0
for b in list(range(0,5)) + list(range(6,11)) + list(range(12,24)):
    PROXY_SUPPORTED |= 1 << b
DEP = 1 << 24
OUT = os.path.join(ROOT, 'src/protocol/testdata/mariadb'); os.makedirs(OUT, exist_ok=True)

def frame(seq, p): return struct.pack('<I', len(p))[:3] + bytes([seq]) + p
class C:
    def __init__(s, caps, user=b'app', pw=b'password', db=b'shop'):
        s.caps = caps; s.sock = socket.create_connection(('127.0.0.1', PORT))
        s.greeting_raw = s.recv_all(0.3)
        g = s.greeting_raw[4:]
        i = g.index(0, 1); ver = g[1:i]; p = i + 1 + 4
        scr = g[p:p+8]; p += 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10
        scr += g[p:p+12]
        s.scramble = scr
        s1 = hashlib.sha1(pw).digest(); s2 = hashlib.sha1(s1).digest()
        resp = bytes(a ^ b for a, b in zip(s1, hashlib.sha1(scr + s2).digest()))
        attrs = b''
        for k, v in [(b'_client_name', b'capture.py'), (b'_pid', b'4242')]:
            attrs += bytes([len(k)]) + k + bytes([len(v)]) + v
        hr = struct.pack('<IIB', caps, 1 << 24, 45) + b'\0' * 23 + user + b'\0' + bytes([len(resp)]) + resp + db + b'\0' + b'mysql_native_password\0' + bytes([len(attrs)]) + attrs
        s.handshake_response = hr
        s.sock.sendall(frame(1, hr))
        r = s.recv_all(0.3)
        assert r[4] == 0, r
    def recv_all(s, t):
        s.sock.settimeout(t); out = b''
        try:
            while True:
                b = s.sock.recv(1 << 20)
                if not b: break
                out += b
        except socket.timeout: pass
        return out
    def cmd(s, payload, t=0.3, seq=0):
        s.sock.sendall(frame(seq, payload)); return s.recv_all(t)

def save(name, b):
    open(os.path.join(OUT, name), 'wb').write(b)

for dep in (0, DEP):
    caps = PROXY_SUPPORTED | dep
    tag = 'dep' if dep else 'old'
    c = C(caps)
    if dep == 0:
        save('greeting.bin', c.greeting_raw[4:]); save('handshake_response.bin', c.handshake_response)
    def q(name, expect, payload, **kw):
        r = c.cmd(payload, **kw); save(f'{name}.{expect}.{tag}.bin', r); save(f'cmd.{name}.bin', payload); return r
    q('select_t', 'query', b'\x03SELECT * FROM t ORDER BY id')
    q('multi', 'query', b'\x03SELECT 1; SELECT id FROM t ORDER BY id; DO 1')
    q('call', 'query', b'\x03CALL p()')
    q('err', 'query', b'\x03SELECT * FROM nope')
    q('insert', 'query', b"\x03INSERT INTO t VALUES (1000, 'x', NULL) ON DUPLICATE KEY UPDATE note='y'")
    q('begin', 'query', b'\x03BEGIN')
    q('commit', 'query', b'\x03COMMIT')
    q('empty_result', 'query', b'\x03SELECT * FROM t WHERE id < 0')
    r = q('infile', 'query', b"\x03LOAD DATA LOCAL INFILE '/tmp/cap/data.csv' REPLACE INTO TABLE t FIELDS TERMINATED BY ','")
    # Send the file: seq continues after the server's request (seq 1) -> 2.
    c.sock.sendall(frame(2, b'20,a,b\n21,c,d\n') + frame(3, b''))
    save(f'infile_result.infileresult.{tag}.bin', c.recv_all(0.3))
    r = q('prepare', 'prepare', b'\x16SELECT id, name FROM t WHERE id > ?')
    stmt = r[5:9]
    q('prepare_noparams', 'prepare', b'\x16DO 1')
    q('prepare_err', 'prepare', b'\x16SELECT * FROM nope WHERE x = ?')
    params = b'\x00' + b'\x01' + b'\x03\x00' + struct.pack('<i', 0)
    q('execute', 'execute', b'\x17' + stmt + b'\x00\x01\x00\x00\x00' + params)
    q('execute_cursor', 'execute', b'\x17' + stmt + b'\x01\x01\x00\x00\x00' + params)
    q('fetch', 'fetch', b'\x1c' + stmt + struct.pack('<I', 2))
    q('fetch_rest', 'fetch', b'\x1c' + stmt + struct.pack('<I', 100))
    q('stmt_reset', 'simple', b'\x1a' + stmt)
    q('field_list', 'fieldlist', b'\x04t\x00')
    q('statistics', 'statistics', b'\x09')
    q('ping', 'simple', b'\x0e')
    q('init_db', 'simple', b'\x02shop')
    q('init_db_err', 'simple', b'\x02nope')
    q('set_option', 'simple', b'\x1b\x01\x00')
    q('reset_connection', 'simple', b'\x1f')
    q('execute_proc', 'execute', b'\x17' + c.cmd(b'\x16CALL p()')[5:9] + b'\x00\x01\x00\x00\x00')
    c.sock.sendall(frame(0, b'\x19' + stmt))  # close: no reply
    # change user: with mysql_native_password the server may answer OK directly or switch.
    s1 = hashlib.sha1(b'password').digest(); s2 = hashlib.sha1(s1).digest()
    resp = bytes(a ^ b for a, b in zip(s1, hashlib.sha1(c.scramble + s2).digest()))
    cu = b'\x11app\x00' + bytes([20]) + resp + b'shop\x00' + b'\x2d\x00' + b'mysql_native_password\x00' + b'\x00'
    r = q('change_user', 'changeuser', cu)
    save('auth_switch.bin', r[4:])
    scr2 = r[4+1+len(b'mysql_native_password')+1:][:20]
    resp2 = bytes(a ^ b for a, b in zip(s1, hashlib.sha1(scr2 + s2).digest()))
    c.sock.sendall(frame(r[3] + 1, resp2))
    save(f'change_user_final.simple.{tag}.bin', c.recv_all(0.3))
    save(f'change_user_response.bin', resp2)
    save(f'cmd.quit.bin', b'\x01')
    c.sock.close()

# ---- fuzz seeds ----
EXPECTS = ['query', 'prepare', 'execute', 'fetch', 'fieldlist', 'statistics', 'simple', 'infileresult']
def seed(target, name, data):
    d = os.path.join(ROOT, 'fuzz/corpus', target); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, 'seed-' + name), 'wb').write(data)
def payloads(b):
    out = []; i = 0
    while i + 4 <= len(b):
        n = b[i] | b[i+1] << 8 | b[i+2] << 16; out.append(b[i+4:i+4+n]); i += 4 + n
    return out
for f in sorted(os.listdir(OUT)):
    data = open(os.path.join(OUT, f), 'rb').read()
    parts = f.split('.')
    if f.startswith('cmd.'):
        seed('command', f, data)
        seed('framer', 'relay-' + f, bytes([0, 0]) + frame(0, data))
        seed('framer', 'write-' + f, bytes([2, 0]) + data)
    elif len(parts) == 4 and parts[1] in EXPECTS:
        mode = EXPECTS.index(parts[1]) | (8 if parts[2] == 'dep' else 0)
        seed('reply', f, bytes([mode, 7]) + data)
        # Each server packet alone is a handshake/command-parser seed too.
        for i, p in enumerate(payloads(data)[:3]):
            seed('command', f'{f}.{i}', p)
    else:
        seed('handshake', f, data)
# Handshake edge cases no server sends on request.
seed('handshake', 'err-greeting', b"\xff\x69\x04Host '10.1.2.3' is blocked because of many connection errors")
seed('handshake', 'ssl-request', struct.pack('<IIB', PROXY_SUPPORTED | (1 << 11), 1 << 24, 45) + b'\0' * 23)
seed('handshake', 'old-auth-switch', b'\xfe')
seed('handshake', 'attributes', b'\x0c_client_name\x0alibmariadb\x04_pid\x05\x31\x32\x33\x34\x35\x06_proxy\x08dbrouter')
# LOCAL INFILE content as the client sends it.
seed('framer', 'infile', bytes([1, 2]) + frame(2, b'20,a,b\n21,c,d\n') + frame(3, b''))
# Generated replies (fuzzing::build_reply scripts): text and binary, both EOF styles.
for mode in (16, 17, 24, 25):
    seed('reply', f'generated-{mode}', bytes([mode, 3]) + bytes([1, 2, 3, 0, 9, 0xfb, 4, 0, 1, 2, 3, 1, 1, 7, 0]))
print('ok')

