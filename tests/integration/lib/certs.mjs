// A throw-away CA and a server certificate it signs, made by openssl in dir: for the tests that
// need a TLS Core (or a TLS serve) whose CA blnkproxy is told about, or not.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes ca.key, ca.pem, core.key and core.pem into dir. cn is the certificate's subject name and
 * san its subjectAltName ("IP:127.0.0.1", "DNS:localhost"). Returns the paths.
 */
export function makeCertificates(dir, { cn = '127.0.0.1', san = 'IP:127.0.0.1', ca = 'blnkproxy test CA' } = {}) {
    const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${ca}`,
        '-keyout', 'ca.key', '-out', 'ca.pem');
    run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', 'core.key', '-out', 'core.csr');
    fs.writeFileSync(path.join(dir, 'ext.cnf'), `subjectAltName=${san}\n`);
    run('x509', '-req', '-in', 'core.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1',
        '-extfile', 'ext.cnf', '-out', 'core.pem');
    return { ca: path.join(dir, 'ca.pem'), key: path.join(dir, 'core.key'), cert: path.join(dir, 'core.pem') };
}
