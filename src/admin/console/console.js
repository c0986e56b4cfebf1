// The blnkproxy console: plain JavaScript over the admin API (/admin/api/, docs/ADMIN_API.md),
// no framework and no build step. Everything shown is built with textContent, never innerHTML:
// audit records carry paths and names that any client can choose.
'use strict';

const API = '/admin/api';
const state = { operator: null, csrf: null, page: null, timer: null, gen: 0 };

// ---- DOM helpers ----

function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) {
            continue;
        }
        if (k.startsWith('on')) {
            node.addEventListener(k.slice(2), v);
        } else if (k === 'class') {
            node.className = v;
        } else {
            node.setAttribute(k, v === true ? '' : String(v));
        }
    }
    for (const c of children.flat(Infinity)) {
        if (c !== undefined && c !== null && c !== false) {
            node.append(c instanceof Node ? c : document.createTextNode(String(c)));
        }
    }
    return node;
}

function table(caption, columns, rows) {
    return el('div', { class: 'table-wrap' },
        el('table', {},
            el('caption', { class: 'muted' }, caption),
            el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col' }, c[0])))),
            el('tbody', {}, rows.map((r) => el('tr', {}, columns.map((c) => el('td', {}, c[1](r))))))));
}

const status = (s) => el('span', { class: `status-${s}` }, String(s));
const code = (s) => (s ? el('code', {}, s) : '—');
const list = (a) => (a && a.length ? a.join(', ') : 'all');
const when = (t) => (t ? t.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : '—');

// ---- the API ----

async function api(method, path, body) {
    const headers = {};
    if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
    }
    if (method !== 'GET' && state.csrf) {
        headers['X-CSRF-Token'] = state.csrf;
    }
    const gen = state.gen;
    const r = await fetch(API + path, {
        method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = r.status === 204 ? null : await r.json().catch(() => null);
    if (r.status === 401 && path !== '/session') {
        showSignIn('Your session has ended: sign in again.');
        throw new Error('signed out');
    }
    // A read for a page that another navigation replaced meanwhile: its answer would draw the
    // old page over the new one (and over what is being typed into it).
    if (method === 'GET' && gen !== state.gen) {
        throw new Error('stale');
    }
    if (!r.ok) {
        throw new Error(json && json.error ? json.error : `HTTP ${r.status}`);
    }
    return json;
}

function showError(where, e) {
    if (e.message !== 'signed out' && e.message !== 'stale') {
        where.textContent = e.message;
    }
}

// ---- sign-in ----

function showSignIn(message) {
    state.operator = null;
    state.csrf = null;
    document.getElementById('nav').hidden = true;
    document.getElementById('signout').hidden = true;
    document.getElementById('who').textContent = '';
    document.getElementById('page').replaceChildren();
    document.getElementById('signin').hidden = false;
    document.getElementById('signin-error').textContent = message || '';
    document.getElementById('signin-name').focus();
}

function signedIn(session) {
    state.operator = session.operator;
    state.csrf = session.csrf_token || null;
    document.getElementById('signin').hidden = true;
    document.getElementById('nav').hidden = false;
    document.getElementById('signout').hidden = false;
    document.getElementById('who').textContent = `${session.operator.name} (${session.operator.role})`;
    for (const a of document.querySelectorAll('#nav a[data-role]')) {
        a.hidden = a.dataset.role !== state.operator.role;
    }
    route();
}

async function onSignIn(ev) {
    ev.preventDefault();
    const f = ev.target;
    const err = document.getElementById('signin-error');
    err.textContent = '';
    try {
        const r = await fetch(`${API}/session`, {
            method: 'POST', headers: { 'Content-Type': 'application/json' }, credentials: 'same-origin',
            body: JSON.stringify({ name: f.elements.name.value, password: f.elements.password.value }),
        });
        const json = await r.json().catch(() => null);
        f.elements.password.value = '';
        if (!r.ok) {
            err.textContent = json && json.error ? json.error : `HTTP ${r.status}`;
            return;
        }
        signedIn(json);
    } catch (e) {
        err.textContent = e.message;
    }
}

async function onSignOut() {
    try {
        await api('DELETE', '/session');
    } catch (e) {
        // signed out either way
    }
    location.hash = '';
    showSignIn('Signed out.');
}

// ---- pages ----

// A button that runs an API call (then usually re-renders the page); what went wrong goes to msg.
// run gets the button (a panel it opens gives the focus back to it when closed).
function actionButton(label, aria, cls, msg, run, confirmText, attrs = {}) {
    return el('button', {
        type: 'button', class: cls, 'aria-label': aria, ...attrs,
        onclick: async (ev) => {
            const button = ev.currentTarget;
            if (confirmText && !window.confirm(confirmText)) {
                return;
            }
            msg.textContent = '';
            try {
                await run(button);
            } catch (e) {
                showError(msg, e);
            }
        },
    }, label);
}

const isAdmin = () => state.operator && state.operator.role === 'admin';

function pageShell(title, ...content) {
    const page = document.getElementById('page');
    const h = el('h1', { tabindex: '-1' }, title);
    page.replaceChildren(h, ...content);
    return page;
}

// A label and its field (input, select or textarea): every field has a label.
function field(id, label, attrs = {}, tag = 'input', ...children) {
    return [el('label', { for: id }, label), el(tag, { id, ...attrs }, ...children)];
}

// A form whose submit runs an API call; what went wrong goes to err. The submit button is
// disabled while the call runs (no double changes).
function onSubmit(form, err, run) {
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        err.textContent = '';
        const buttons = [...form.querySelectorAll('button')];
        buttons.forEach((b) => { b.disabled = true; });
        try {
            await run(form.elements);
        } catch (e) {
            showError(err, e);
        } finally {
            buttons.forEach((b) => { b.disabled = false; });
        }
    });
    return form;
}

// The page's panel (#panel, under its table): one at a time, for one row's changes. The focus
// moves to its heading; Close (or Escape) gives it back to the button that opened it.
function panel(title, opener, notice, ...content) {
    const box = document.getElementById('panel');
    if (!box) {
        return;
    }
    const close = () => {
        box.replaceChildren();
        (opener && opener.isConnected ? opener : document.querySelector('#page h1')).focus();
    };
    const h = el('h2', { id: 'panel-title', tabindex: '-1' }, title);
    const said = el('p', { class: 'notice', role: 'status', id: 'panel-notice' });
    const section = el('section', { class: 'panel', 'aria-labelledby': 'panel-title' },
        h, said, ...content,
        el('button', { type: 'button', class: 'secondary', id: 'panel-close', onclick: close }, 'Close'));
    section.addEventListener('keydown', (ev) => {
        if (ev.key === 'Escape') {
            close();
        }
    });
    box.replaceChildren(section);
    h.focus();
    if (notice) {
        // Said once the live region is in the page, so that a screen reader announces it.
        setTimeout(() => { said.textContent = notice; }, 50);
    }
}

// After a change made in a panel: the page is drawn again from the API, and the same panel is
// opened again on the row's new record, saying what was done.
async function changed(kind, id, notice) {
    state.reopen = { page: state.page, kind, id, notice };
    await route();
}

function reopen(records, openers) {
    const r = state.reopen;
    state.reopen = null;
    if (r && r.page === state.page && openers[r.kind]) {
        const rec = records.find((x) => x.id === r.id);
        if (rec) {
            return openers[r.kind](document.querySelector(`#page button[data-opens="${r.kind}:${r.id}"]`), rec, r.notice);
        }
    }
    return undefined;
}

// Where a key or client may be used from, and how fast.
const allowText = (r) => (r.allow_from && r.allow_from.length ? r.allow_from.join(', ') : 'any');
function rateText(r) {
    if (!r.rate_limit) {
        return 'default';
    }
    if (r.rate_limit === '0') {
        return 'no limit';
    }
    return r.burst ? `${r.rate_limit}, burst ${r.burst}` : r.rate_limit;
}
const splitList = (s) => s.split(/[\s,]+/).filter(Boolean);
function burstNumber(s) {
    if (!/^[0-9]+$/.test(s)) {
        throw new Error('Burst must be a whole number of requests.');
    }
    return Number(s);
}

function limitFields(prefix, rec = {}) {
    return [
        field(`${prefix}-allow`, 'Allowed from (addresses or networks, comma-separated; empty: any address)', {
            name: 'allow_from', value: (rec.allow_from || []).join(', '), placeholder: '10.0.0.0/8, 203.0.113.7',
            autocomplete: 'off', spellcheck: 'false',
        }),
        field(`${prefix}-rate`, 'Rate limit (e.g. 100/s, 6000/m; empty: the server\'s default; 0: no limit)', {
            name: 'rate_limit', value: rec.rate_limit || '', placeholder: '100/s', autocomplete: 'off', spellcheck: 'false',
        }),
        field(`${prefix}-burst`, 'Burst (requests it may make at once before the rate applies; empty: the rate\'s count)', {
            name: 'burst', value: rec.burst ? String(rec.burst) : '', inputmode: 'numeric', autocomplete: 'off',
        }),
    ];
}

// A new credential's limits: what was filled in.
function limitsOfNew(f, body) {
    const allow = splitList(f.allow_from.value);
    const rate = f.rate_limit.value.trim();
    const burst = f.burst.value.trim();
    if (allow.length) {
        body.allow_from = allow;
    }
    if (rate) {
        body.rate_limit = rate;
    }
    if (burst) {
        body.burst = burstNumber(burst);
    }
    return body;
}

// A change of limits: only what differs from the record (each change is its own audit record).
function limitsChange(f, rec) {
    const body = {};
    const allow = splitList(f.allow_from.value);
    const rate = f.rate_limit.value.trim();
    const burst = f.burst.value.trim();
    if (allow.join(',') !== (rec.allow_from || []).join(',')) {
        body.allow_from = allow.length ? allow : 'any';
    }
    if (rate !== (rec.rate_limit || '') || burst !== (rec.burst ? String(rec.burst) : '')) {
        body.rate_limit = rate || 'default';
        if (burst) {
            body.burst = burstNumber(burst);
        }
    }
    return body;
}

// "Limits" of a key or a client (kind: keys or clients): PATCH /keys/{id}, /clients/{id}.
function limitsPanel(kind, opener, rec, notice) {
    const one = kind === 'keys' ? 'key' : 'client';
    const err = el('p', { class: 'error', role: 'alert' });
    const form = onSubmit(el('form', { id: `${one}-limits-form`, 'aria-label': `Limits of ${rec.name}` },
        limitFields(`${one}-limits`, rec),
        el('button', { type: 'submit' }, 'Save limits')), err, async (f) => {
        const body = limitsChange(f, rec);
        if (!Object.keys(body).length) {
            throw new Error('Nothing changed.');
        }
        const r = await api('PATCH', `/${kind}/${encodeURIComponent(rec.id)}`, body);
        await changed('limits', rec.id, `Limits of ${rec.name} saved: from ${allowText(r)}, rate ${rateText(r)}.`);
    });
    panel(`Limits of ${rec.name}`, opener, notice,
        el('p', { class: 'muted' }, `Now: from ${allowText(rec)}; rate ${rateText(rec)}. A change is in force on every node when it is saved.`),
        err, form);
}

// "Expiry" of a key or a client: POST /keys/{id}/expire, /clients/{id}/expire.
function expiryPanel(kind, opener, rec, notice) {
    const one = kind === 'keys' ? 'key' : 'client';
    const err = el('p', { class: 'error', role: 'alert' });
    const form = onSubmit(el('form', { id: `${one}-expiry-form`, 'aria-label': `Expiry of ${rec.name}` },
        field(`${one}-expires-in`, 'Expires in (from now: 12h, 30d, 365d … or never)', {
            name: 'expires_in', required: true, list: `${one}-expiry-choices`, placeholder: '30d', autocomplete: 'off',
        }),
        el('datalist', { id: `${one}-expiry-choices` }, ['never', '1d', '7d', '30d', '90d', '365d'].map((v) => el('option', { value: v }))),
        el('button', { type: 'submit' }, 'Set expiry')), err, async (f) => {
        const r = await api('POST', `/${kind}/${encodeURIComponent(rec.id)}/expire`, { expires_in: f.expires_in.value.trim() });
        await changed('expiry', rec.id, r.expires_at ? `${rec.name} expires ${when(r.expires_at)} UTC.` : `${rec.name} never expires.`);
    });
    panel(`Expiry of ${rec.name}`, opener, notice,
        el('p', { class: 'muted' }, rec.expires_at ? `Now: expires ${when(rec.expires_at)} UTC.` : 'Now: never expires.'),
        err, form);
}

// A file offered for download: a blob: URL on a link with a download attribute (the page's
// policy governs what it loads, not what it saves).
function download(name, parts, type) {
    const url = URL.createObjectURL(new Blob(parts, { type }));
    const a = el('a', { href: url, download: name, class: 'offscreen' }, name);
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
}

function shownOnce(label, secret) {
    const box = el('div', { class: 'secret', role: 'status' },
        el('strong', {}, `${label}: shown once. Copy it now; it cannot be shown again.`),
        el('code', { id: 'secret-value' }, secret),
        el('button', {
            type: 'button', class: 'secondary', id: 'copy-secret',
            onclick: async (ev) => {
                try {
                    await navigator.clipboard.writeText(secret);
                    ev.target.textContent = 'Copied';
                } catch (e) {
                    ev.target.textContent = 'Select the text and copy it';
                }
            },
        }, 'Copy'));
    return box;
}

// "Edit" of an instance: PATCH /instances/{id} with what changes. A new URL needs the secret of
// the Core there in the same call (the API refuses it otherwise, and the page says why).
function instancePanel(opener, i, notice) {
    const err = el('p', { class: 'error', role: 'alert' });
    const save = async (body, done) => {
        await api('PATCH', `/instances/${encodeURIComponent(i.id)}`, body);
        await changed('edit', i.id, `${i.name}: ${done}.`);
    };
    const name = onSubmit(el('form', { id: 'instance-edit-name' }, el('fieldset', {}, el('legend', {}, 'Name'),
        field('instance-new-name', 'New name', { name: 'name', value: i.name, required: true, autocomplete: 'off' }),
        el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Save name')))), err,
    (f) => {
        if (f.name.value.trim() === i.name) {
            throw new Error('Nothing changed: that is its name.');
        }
        return save({ name: f.name.value.trim() }, `renamed ${f.name.value.trim()}`);
    });
    const url = onSubmit(el('form', { id: 'instance-edit-url' }, el('fieldset', {}, el('legend', {}, 'URL'),
        el('p', { class: 'muted' }, 'A new URL needs the secret key of the Core at that URL in the same change: '
            + 'the stored secret never follows the instance to another host.'),
        field('instance-new-url', 'New URL', { name: 'url', type: 'url', value: i.url, required: true, autocomplete: 'off' }),
        field('instance-new-url-secret', 'Secret key of the Core at the new URL', { name: 'secret_key', type: 'password', autocomplete: 'off' }),
        el('label', {}, el('input', { type: 'checkbox', name: 'no_secret', id: 'instance-new-url-nosecret' }),
            ' The Core at the new URL needs no secret key'),
        el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Change URL')))), err, async (f) => {
        const body = { url: f.url.value.trim() };
        if (f.secret_key.value) {
            body.secret_key = f.secret_key.value;
        } else if (f.no_secret.checked) {
            body.secret_key = null;
        }
        f.secret_key.value = '';
        await save(body, `URL changed to ${body.url}`);
    });
    const secret = onSubmit(el('form', { id: 'instance-edit-secret' }, el('fieldset', {}, el('legend', {}, 'Core secret key'),
        el('p', { class: 'muted' }, i.has_secret_key ? 'A secret key is stored (it is never shown).' : 'No secret key is stored.'),
        field('instance-new-secret', i.has_secret_key ? 'New secret key (replaces the stored one)' : 'Secret key',
            { name: 'secret_key', type: 'password', autocomplete: 'off', required: true }),
        el('div', { class: 'actions' }, el('button', { type: 'submit' }, i.has_secret_key ? 'Replace secret key' : 'Set secret key'),
            i.has_secret_key ? actionButton('Remove secret key', `Remove the secret key of ${i.name}`, 'danger', err,
                () => save({ secret_key: null }, 'secret key removed'),
                `Remove the Core secret key of ${i.name}? Requests are then forwarded without one.`, { id: 'instance-remove-secret' }) : ''))),
    err, async (f) => {
        const body = { secret_key: f.secret_key.value };
        f.secret_key.value = '';
        await save(body, i.has_secret_key ? 'secret key replaced' : 'secret key set');
    });
    const ca = onSubmit(el('form', { id: 'instance-edit-ca' }, el('fieldset', {}, el('legend', {}, 'CA file'),
        el('p', { class: 'muted' }, 'PEM certificates to verify this Core\'s https certificate with, instead of the system\'s: '
            + 'the absolute path of a readable file on the server.'),
        field('instance-new-ca', 'CA file path (on the server)', {
            name: 'ca_file', value: i.ca_file || '', required: true, placeholder: '/etc/blnkproxy/core-ca.pem',
            autocomplete: 'off', spellcheck: 'false',
        }),
        el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Set CA file'),
            i.ca_file ? actionButton('Clear CA file', `Clear the CA file of ${i.name}`, 'secondary', err,
                () => save({ ca_file: null }, 'CA file cleared: the system\'s certificates verify it'), undefined,
                { id: 'instance-clear-ca' }) : ''))),
    err, (f) => save({ ca_file: f.ca_file.value.trim() }, `CA file set to ${f.ca_file.value.trim()}`));
    panel(`Edit ${i.name}`, opener, notice, el('p', { class: 'muted' }, code(i.id)), err, name, url, secret, ca);
}

async function instancesPage() {
    const data = await api('GET', '/instances');
    const msg = el('p', { class: 'error', role: 'alert' });
    const rows = table('Core instances', [
        ['Name', (i) => i.name],
        ['ID', (i) => code(i.id)],
        ['URL', (i) => i.url],
        ['Secret key', (i) => (i.has_secret_key ? 'set' : 'none')],
        ['CA file', (i) => (i.ca_file ? code(i.ca_file) : 'system')],
        ['Enabled', (i) => status(i.enabled)],
        ['', (i) => (isAdmin() ? el('span', { class: 'actions' },
            actionButton('Edit', `Edit ${i.name}`, 'secondary', msg, (b) => instancePanel(b, i), undefined, { 'data-opens': `edit:${i.id}` }),
            actionButton('Check connection', `Check the connection to ${i.name}`, 'secondary', msg, async () => {
                checked.textContent = `Checking ${i.name}…`;
                const r = await api('POST', `/instances/${encodeURIComponent(i.id)}/check`);
                checked.textContent = r.healthy ? `${i.name}: healthy, Core answered ${r.status} in ${r.time_ms} ms.`
                    : `${i.name}: ${r.problem}${r.hint ? ` (${r.hint})` : ''}`;
            }),
            actionButton(i.enabled ? 'Disable' : 'Enable', `${i.enabled ? 'Disable' : 'Enable'} ${i.name}`,
                i.enabled ? 'danger' : 'secondary', msg, async () => {
                    await api('POST', `/instances/${encodeURIComponent(i.id)}/${i.enabled ? 'disable' : 'enable'}`);
                    route();
                }),
            actionButton('Remove', `Remove ${i.name}`, 'danger', msg, async () => {
                await api('DELETE', `/instances/${encodeURIComponent(i.id)}`);
                route();
            }, `Remove the instance ${i.name}? Requests for it are refused at once.`)) : '')],
    ], data.instances);
    const checked = el('p', { id: 'instance-check', role: 'status' });
    const content = [msg, checked, rows, el('div', { id: 'panel' })];
    if (isAdmin()) {
        const form = el('form', { id: 'instance-form', 'aria-labelledby': 'instance-add-title' },
            el('label', { for: 'instance-name' }, 'Name'), el('input', { id: 'instance-name', name: 'name', required: true }),
            el('label', { for: 'instance-url' }, 'URL'),
            el('input', { id: 'instance-url', name: 'url', type: 'url', required: true, placeholder: 'https://core.example:5001' }),
            el('label', { for: 'instance-secret' }, 'Core secret key (entered once, never shown again)'),
            el('input', { id: 'instance-secret', name: 'secret_key', type: 'password', autocomplete: 'off' }),
            el('label', { for: 'instance-ca' }, 'CA file path on the server (optional: PEM certificates to verify Core\'s https certificate with)'),
            el('input', { id: 'instance-ca', name: 'ca_file', autocomplete: 'off', spellcheck: 'false', placeholder: '/etc/blnkproxy/core-ca.pem' }),
            el('button', { type: 'submit' }, 'Add instance'));
        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            const body = { name: form.elements.name.value, url: form.elements.url.value };
            if (form.elements.secret_key.value) {
                body.secret_key = form.elements.secret_key.value;
            }
            if (form.elements.ca_file.value.trim()) {
                body.ca_file = form.elements.ca_file.value.trim();
            }
            try {
                await api('POST', '/instances', body);
                form.elements.secret_key.value = '';
                route();
            } catch (e) {
                showError(msg, e);
            }
        });
        content.push(el('h2', { id: 'instance-add-title' }, 'Add an instance'), form);
    }
    pageShell('Instances', ...content);
    if (isAdmin()) {
        reopen(data.instances, { edit: instancePanel });
    }
}

async function keysPage() {
    const [data, insts] = await Promise.all([api('GET', '/keys'), api('GET', '/instances')]);
    const names = Object.fromEntries(insts.instances.map((i) => [i.id, i.name]));
    const msg = el('p', { class: 'error', role: 'alert' });
    const created = el('div', { id: 'created' });
    const rows = table('API keys', [
        ['Name', (k) => k.name],
        ['ID', (k) => code(k.id)],
        ['Prefix', (k) => code(k.prefix)],
        ['Scopes', (k) => k.scopes.join(', ')],
        ['Instances', (k) => list((k.instances || []).map((id) => names[id] || id))],
        ['Allowed from', allowText],
        ['Rate limit', rateText],
        ['Status', (k) => status(k.status)],
        ['Expires', (k) => when(k.expires_at)],
        ['Last used', (k) => when(k.last_used_at)],
        ['', (k) => (isAdmin() && k.status !== 'revoked' ? el('span', { class: 'actions' },
            actionButton('Limits', `Limits of ${k.name}`, 'secondary', msg, (b) => limitsPanel('keys', b, k), undefined, { 'data-opens': `limits:${k.id}` }),
            actionButton('Expiry', `Expiry of ${k.name}`, 'secondary', msg, (b) => expiryPanel('keys', b, k), undefined, { 'data-opens': `expiry:${k.id}` }),
            k.replaced_by || k.status !== 'active' ? '' : actionButton('Rotate', `Rotate ${k.name}`, 'secondary', msg, async () => {
                const n = await api('POST', `/keys/${encodeURIComponent(k.id)}/rotate`, { grace: '24h' });
                await route();
                document.getElementById('created').replaceChildren(
                    shownOnce(`New key for ${n.name} (the old one works for 24 hours more)`, n.key));
                document.getElementById('copy-secret').focus();
            }, `Rotate the key ${k.name}? A new key is made; the old one stops after 24 hours.`),
            actionButton('Revoke', `Revoke ${k.name}`, 'danger', msg, async () => {
                await api('POST', `/keys/${encodeURIComponent(k.id)}/revoke`);
                route();
            }, `Revoke the key ${k.name}? Requests with it are refused at once.`)) : '')],
    ], data.keys);
    const content = [msg, created];
    if (isAdmin()) {
        const form = el('form', { id: 'key-form', 'aria-labelledby': 'key-create-title' },
            el('label', { for: 'key-name' }, 'Name'), el('input', { id: 'key-name', name: 'name', required: true }),
            el('fieldset', {}, el('legend', {}, 'Scopes'),
                el('label', {}, el('input', { type: 'checkbox', name: 'scope', value: 'proxy:read', checked: true }), ' proxy:read'),
                el('label', {}, el('input', { type: 'checkbox', name: 'scope', value: 'proxy:write' }), ' proxy:write')),
            el('label', { for: 'key-instances' }, 'Instances (none selected: all)'),
            el('select', { id: 'key-instances', name: 'instances', multiple: true },
                insts.instances.map((i) => el('option', { value: i.id }, `${i.name} (${i.id})`))),
            el('label', { for: 'key-expiry' }, 'Expires in'),
            el('select', { id: 'key-expiry', name: 'expires_in' },
                ['never', '1d', '30d', '90d', '365d'].map((v) => el('option', { value: v }, v))),
            limitFields('key'),
            el('button', { type: 'submit' }, 'Create key'));
        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            const scopes = [...form.querySelectorAll('input[name=scope]:checked')].map((c) => c.value);
            const instances = [...form.elements.instances.selectedOptions].map((o) => o.value);
            const body = { name: form.elements.name.value, scopes, expires_in: form.elements.expires_in.value };
            if (instances.length) {
                body.instances = instances;
            }
            try {
                limitsOfNew(form.elements, body);
                const k = await api('POST', '/keys', body);
                await route();
                document.getElementById('created').replaceChildren(shownOnce(`API key ${k.name}`, k.key));
                document.getElementById('copy-secret').focus();
            } catch (e) {
                showError(msg, e);
            }
        });
        content.push(el('h2', { id: 'key-create-title' }, 'Create a key'), form);
    }
    content.splice(2, 0, rows, el('div', { id: 'panel' }));
    pageShell('API keys', ...content);
    if (isAdmin()) {
        reopen(data.keys, {
            limits: (b, k, n) => limitsPanel('keys', b, k, n), expiry: (b, k, n) => expiryPanel('keys', b, k, n),
        });
    }
}

async function clientsPage() {
    const data = await api('GET', '/clients');
    const msg = el('p', { class: 'error', role: 'alert' });
    const created = el('div', { id: 'created' });
    const content = [msg, created];
    if (isAdmin()) {
        const form = el('form', { id: 'client-form', 'aria-labelledby': 'client-create-title' },
            el('label', { for: 'client-name' }, 'Name'), el('input', { id: 'client-name', name: 'name', required: true }),
            el('fieldset', {}, el('legend', {}, 'Scopes'),
                el('label', {}, el('input', { type: 'checkbox', name: 'scope', value: 'proxy:read', checked: true }), ' proxy:read'),
                el('label', {}, el('input', { type: 'checkbox', name: 'scope', value: 'proxy:write' }), ' proxy:write')),
            el('label', { for: 'client-uris' }, 'Redirect URIs (one per line; none: machine-to-machine only)'),
            el('textarea', { id: 'client-uris', name: 'redirect_uris', rows: '2' }),
            el('label', { for: 'client-expiry' }, 'Expires in'),
            el('select', { id: 'client-expiry', name: 'expires_in' },
                ['never', '1d', '30d', '90d', '365d'].map((v) => el('option', { value: v }, v))),
            limitFields('client'),
            el('button', { type: 'submit' }, 'Create client'));
        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            const scopes = [...form.querySelectorAll('input[name=scope]:checked')].map((c) => c.value);
            const uris = form.elements.redirect_uris.value.split('\n').map((u) => u.trim()).filter(Boolean);
            try {
                const body = limitsOfNew(form.elements, {
                    name: form.elements.name.value, scopes, redirect_uris: uris, expires_in: form.elements.expires_in.value,
                });
                const c = await api('POST', '/clients', body);
                await route();
                document.getElementById('created').replaceChildren(shownOnce(`Client secret of ${c.name} (${c.id})`, c.client_secret));
                document.getElementById('copy-secret').focus();
            } catch (e) {
                showError(msg, e);
            }
        });
        content.push(el('h2', { id: 'client-create-title' }, 'Create a client'), form);
    }
    content.splice(2, 0, table('OAuth clients', [
        ['Name', (c) => c.name],
        ['ID', (c) => code(c.id)],
        ['Grants', (c) => c.grant_types.join(', ')],
        ['Scopes', (c) => c.scopes.join(', ')],
        ['Redirect URIs', (c) => c.redirect_uris.join(' ') || '—'],
        ['Allowed from', allowText],
        ['Rate limit', rateText],
        ['Status', (c) => status(c.status)],
        ['Expires', (c) => when(c.expires_at)],
        ['', (c) => (isAdmin() && c.status !== 'revoked' ? el('span', { class: 'actions' },
            actionButton('Limits', `Limits of ${c.name}`, 'secondary', msg, (b) => limitsPanel('clients', b, c), undefined, { 'data-opens': `limits:${c.id}` }),
            actionButton('Expiry', `Expiry of ${c.name}`, 'secondary', msg, (b) => expiryPanel('clients', b, c), undefined, { 'data-opens': `expiry:${c.id}` }),
            c.status !== 'active' ? '' : actionButton('Rotate secret', `Rotate the secret of ${c.name}`, 'secondary', msg, async () => {
                const r = await api('POST', `/clients/${encodeURIComponent(c.id)}/rotate-secret`, { grace: '24h' });
                await route();
                document.getElementById('created').replaceChildren(
                    shownOnce(`New secret of ${c.name} (the old one works for 24 hours more)`, r.client_secret));
                document.getElementById('copy-secret').focus();
            }, `Rotate the secret of ${c.name}? The old secret stops after 24 hours.`),
            actionButton('Revoke', `Revoke ${c.name}`, 'danger', msg, async () => {
                await api('POST', `/clients/${encodeURIComponent(c.id)}/revoke`);
                route();
            }, `Revoke the client ${c.name} and every token it holds?`)) : '')],
    ], data.clients), el('div', { id: 'panel' }));
    pageShell('OAuth clients', ...content);
    if (isAdmin()) {
        reopen(data.clients, {
            limits: (b, c, n) => limitsPanel('clients', b, c, n), expiry: (b, c, n) => expiryPanel('clients', b, c, n),
        });
    }
}

// "Set password" of an operator: their sessions end (yours too, when it is yours).
function passwordPanel(opener, o, notice) {
    const mine = o.id === state.operator.id;
    const err = el('p', { class: 'error', role: 'alert' });
    const form = onSubmit(el('form', { id: 'operator-password-form', 'aria-label': `New password for ${o.name}` },
        field('operator-new-password', `New password for ${o.name} (8 to 1024 bytes)`, {
            name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: '8', maxlength: '1024',
        }),
        el('button', { type: 'submit' }, 'Set password')), err, async (f) => {
        const password = f.password.value;
        f.password.value = '';
        await api('POST', `/operators/${encodeURIComponent(o.id)}/password`, { password });
        if (mine) {
            showSignIn('Your password was changed: sign in with the new one.');
            return;
        }
        await changed('password', o.id, `Password of ${o.name} set; their console sessions ended.`);
    });
    panel(`Set the password of ${o.name}`, opener, notice,
        el('p', { class: 'muted' }, mine ? 'Your own sessions end: you sign in again with the new password.'
            : `${o.name}'s console sessions end: they sign in again with the new password.`),
        err, form);
}

// An operator's admin tokens: listed (never the token itself), made (shown once), revoked.
async function tokensPanel(opener, o, notice, made) {
    const base = `/operators/${encodeURIComponent(o.id)}/tokens`;
    const data = await api('GET', base);
    const err = el('p', { class: 'error', role: 'alert' });
    const tokens = data.tokens.length === 0 ? el('p', { id: 'tokens-none' }, 'No admin tokens.') : table(`Admin tokens of ${o.name}`, [
        ['Name', (t) => t.name],
        ['Prefix', (t) => code(t.prefix)],
        ['Created', (t) => when(t.created_at)],
        ['Expires', (t) => when(t.expires_at)],
        ['Status', (t) => status(t.status)],
        ['', (t) => (t.status === 'active' ? actionButton('Revoke', `Revoke the token ${t.name} (${t.prefix}…)`, 'danger', err, async () => {
            await api('POST', `${base}/${encodeURIComponent(t.id)}/revoke`);
            await tokensPanel(opener, o, `Token ${t.name} (${t.prefix}…) revoked: it works no more.`);
        }, `Revoke the admin token ${t.name} of ${o.name}? Scripts using it are refused at once.`) : '')],
    ], data.tokens);
    // A token acts as its operator: only they make one (the API refuses it to anyone else).
    const mine = o.id === state.operator.id;
    const form = !mine ? el('p', { class: 'muted', id: 'token-not-mine' }, `Only ${o.name} can make a token of theirs, `
        + 'signed in as themselves (or on the store\'s host: blnkproxy operator token-create).') : onSubmit(el('form', { id: 'token-form', 'aria-labelledby': 'token-create-title' },
        field('token-name', 'What is it for (a name)', { name: 'name', required: true, placeholder: 'ci', autocomplete: 'off' }),
        field('token-expiry', 'Expires in', { name: 'expires_in' }, 'select',
            ['30d', '90d', '180d', '366d'].map((v) => el('option', { value: v, selected: v === '90d' }, v))),
        el('button', { type: 'submit' }, 'Make a token')), err, async (f) => {
        const t = await api('POST', base, { name: f.name.value.trim(), expires_in: f.expires_in.value });
        await tokensPanel(opener, o, `Token ${t.name} made.`, t);
    });
    panel(`Admin tokens of ${o.name}`, opener, notice,
        made ? shownOnce(`Admin token ${made.name} for ${o.name}`, made.token) : '',
        el('p', { class: 'muted' }, `A token acts with ${o.name}'s role at the time of each call: `
            + 'send it as Authorization: Bearer blnk_ad_…'),
        err, tokens, el('h3', { id: 'token-create-title' }, 'Make a token'), form);
    if (made) {
        document.getElementById('copy-secret').focus();
    }
}

async function operatorsPage() {
    const data = await api('GET', '/operators');
    const msg = el('p', { class: 'error', role: 'alert' });
    const created = el('div', { id: 'created' });
    const me = (o) => o.id === state.operator.id;
    const roleSelect = (o) => {
        const sel = el('select', { id: `role-${o.id}`, disabled: me(o) },
            ['admin', 'auditor', 'approver'].map((r) => el('option', { value: r, selected: r === o.role }, r)));
        sel.addEventListener('change', async () => {
            try {
                await api('POST', `/operators/${encodeURIComponent(o.id)}/role`, { role: sel.value });
                route();
            } catch (e) {
                showError(msg, e);
            }
        });
        return [el('label', { for: `role-${o.id}`, class: 'offscreen' }, `Role of ${o.name}`), sel];
    };
    const form = el('form', { id: 'operator-form', 'aria-labelledby': 'operator-create-title' },
        el('label', { for: 'operator-name' }, 'Name'), el('input', { id: 'operator-name', name: 'name', required: true }),
        el('label', { for: 'operator-password' }, 'Password (8 characters or more)'),
        el('input', { id: 'operator-password', name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: '8' }),
        el('label', { for: 'operator-role' }, 'Role'),
        el('select', { id: 'operator-role', name: 'role' }, ['auditor', 'admin', 'approver'].map((r) => el('option', { value: r }, r))),
        el('button', { type: 'submit' }, 'Add operator'));
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        try {
            await api('POST', '/operators', { name: form.elements.name.value, password: form.elements.password.value, role: form.elements.role.value });
            form.elements.password.value = '';
            route();
        } catch (e) {
            showError(msg, e);
        }
    });
    pageShell('Operators', msg, created, table('Operators', [
        ['Name', (o) => o.name],
        ['ID', (o) => code(o.id)],
        ['Role', roleSelect],
        ['Status', (o) => status(o.status)],
        ['Created', (o) => when(o.created_at)],
        ['', (o) => el('span', { class: 'actions' },
            me(o) ? '' : actionButton(o.status === 'active' ? 'Disable' : 'Enable', `${o.status === 'active' ? 'Disable' : 'Enable'} ${o.name}`,
                o.status === 'active' ? 'danger' : 'secondary', msg, async () => {
                    await api('POST', `/operators/${encodeURIComponent(o.id)}/${o.status === 'active' ? 'disable' : 'enable'}`);
                    route();
                }, o.status === 'active' ? `Disable ${o.name}? Their sessions and the apps they approved stop at once.` : undefined),
            actionButton('Set password', `Set the password of ${o.name}`, 'secondary', msg, (b) => passwordPanel(b, o), undefined,
                { 'data-opens': `password:${o.id}` }),
            actionButton('Admin tokens', `Admin tokens of ${o.name}`, 'secondary', msg, (b) => tokensPanel(b, o)))],
    ], data.operators), el('div', { id: 'panel' }), el('h2', { id: 'operator-create-title' }, 'Add an operator'), form);
    reopen(data.operators, { password: passwordPanel });
}

// The audit log: category tabs, filters, newest first, and live updates every 3 s; export of the
// filters' time range; checkpoints; verification against a checkpoint.
const audit = {
    category: '', newest: 0, filters: {}, sinceLocal: '', untilLocal: '', open: {}, exporting: false,
    checkpoints: { days: '7', kind: '' },
    verify: { checkpoint: '', public_key: '', since: '' },
};

const unixSeconds = (local) => (local ? String(Math.floor(new Date(local).getTime() / 1000)) : '');

function auditQuery(extra = {}) {
    const q = new URLSearchParams();
    if (audit.category) {
        q.set('category', audit.category);
    }
    for (const [k, v] of Object.entries({ ...audit.filters, ...extra })) {
        if (v !== '' && v !== undefined) {
            q.set(k, v);
        }
    }
    return q.toString();
}

function auditRow(r) {
    return el('tr', { 'data-seq': r.seq },
        el('td', {}, when(r.time)),
        el('td', {}, r.actor_name || r.actor_id || r.actor_type || 'anonymous', el('br'), el('span', { class: 'muted' }, r.actor_type || '')),
        el('td', {}, r.action || '—'),
        el('td', {}, r.category || '—'),
        el('td', {}, r.instance_id || '—'),
        el('td', {}, r.status ? String(r.status) : '—'),
        el('td', {}, r.resource_id || r.path || '—'));
}

// GET /audit/export, a page at a time (X-Next-After-Seq: where the next starts), as one file. A
// CSV header repeated at the top of a later page is left out.
async function exportAudit(format, said) {
    if (audit.exporting) {
        return;
    }
    audit.exporting = true;
    try {
        const q = new URLSearchParams({ format, limit: '10000' });
        if (audit.filters.since) {
            q.set('since', audit.filters.since);
        }
        // A range still open ends a minute ago: on PostgreSQL the nodes' records commit in any order
        // of their seqs, and one committing behind a page already passed would be missed.
        let range = 'the filters\' time range';
        if (audit.filters.until) {
            q.set('until', audit.filters.until);
        } else {
            const until = Math.floor(Date.now() / 1000) - 60;
            q.set('until', String(until));
            range = `${audit.filters.since ? 'the records since the filters\' Since' : 'the whole log'} up to `
                + `${when(new Date(until * 1000).toISOString())} UTC, a minute ago (the last minute\'s may still be committing)`;
        }
        const parts = [];
        let header = null;
        let after = '';
        for (let pages = 1; ; pages++) {
            if (after) {
                q.set('after_seq', after);
            }
            said.textContent = `Exporting (page ${pages})…`;
            const r = await fetch(`${API}/audit/export?${q}`, { credentials: 'same-origin' });
            if (r.status === 401) {
                showSignIn('Your session has ended: sign in again.');
                throw new Error('signed out');
            }
            if (!r.ok) {
                const json = await r.json().catch(() => null);
                throw new Error(json && json.error ? json.error : `HTTP ${r.status}`);
            }
            let text = await r.text();
            if (format === 'csv') {
                const first = text.slice(0, text.indexOf('\n') + 1);
                if (header === null) {
                    header = first;
                } else if (first && first === header) {
                    text = text.slice(first.length);
                }
            }
            parts.push(text);
            const next = r.headers.get('X-Next-After-Seq');
            if (!next || next === after) {
                const stamp = new Date().toISOString().replace(/[-:]|\.\d+/g, '');
                download(`blnkproxy-audit-${stamp}.${format}`, parts, format === 'csv' ? 'text/csv' : 'application/x-ndjson');
                said.textContent = `Exported ${range} as ${format.toUpperCase()} (${pages} ${pages === 1 ? 'page' : 'pages'}).`;
                return;
            }
            after = next;
        }
    } catch (e) {
        said.textContent = '';
        throw e;
    } finally {
        audit.exporting = false;
    }
}

// A stored checkpoint, as the file `audit checkpoint --out` writes (the signature covers the
// object without "signature", keys sorted, compact: a copy written this way still checks).
// One the server could not parse (changed in the database) is offered as the text it holds.
const checkpointText = (c) => (typeof c.unreadable === 'string' ? c.unreadable : `${JSON.stringify(c)}\n`);

function checkpointFacts(c) {
    if (c.purged) {
        return [`purge of ${c.purged.chain}`, `${c.purged.records} removed`];
    }
    const chains = c.chains || [];
    return [String(chains.length), String(chains.reduce((n, x) => n + (x.n || 0), 0))];
}

// The stored checkpoints of the period chosen, every page of them (oldest first, a page
// starting where the last ended: the one at that moment comes again, known by its id).
async function fetchCheckpoints() {
    const byId = new Map();
    const q = new URLSearchParams({ limit: '1000' });
    if (audit.checkpoints.days) {
        q.set('since', String(Math.floor(Date.now() / 1000) - Number(audit.checkpoints.days) * 86400));
    }
    if (audit.checkpoints.kind) {
        q.set('kind', audit.checkpoints.kind);
    }
    for (;;) {
        const data = await api('GET', `/audit/checkpoints?${q}`);
        const known = byId.size;
        for (const c of data.checkpoints) {
            byId.set(c.id, c);
        }
        if (data.next_since_us === null || data.next_since_us === undefined || byId.size === known) {
            return [...byId.values()];
        }
        q.delete('since');
        q.set('since_us', String(data.next_since_us));
    }
}

const CHECKPOINTS_SHOWN = 200;

async function loadCheckpoints(box, msg, useForVerify) {
    box.setAttribute('aria-busy', 'true');
    const cps = (await fetchCheckpoints()).sort((a, b) => (b.time_us || 0) - (a.time_us || 0));
    box.removeAttribute('aria-busy');
    const shown = cps.slice(0, CHECKPOINTS_SHOWN);
    box.replaceChildren(cps.length === 0 ? el('p', { id: 'checkpoints-none' }, 'No checkpoints in this period.') : table(
        cps.length > shown.length ? `The newest ${shown.length} of ${cps.length} checkpoints of the period (all of them: blnkproxy audit checkpoints)`
            : `${cps.length} ${cps.length === 1 ? 'checkpoint' : 'checkpoints'}, newest first`, [
            ['Time', (c) => when(c.time)],
            ['Kind', (c) => c.kind],
            ['Node', (c) => c.node || '—'],
            ['Chains', (c) => checkpointFacts(c)[0]],
            ['Records', (c) => checkpointFacts(c)[1]],
            ['Signed', (c) => {
                if (typeof c.unreadable === 'string') {
                    return el('span', { class: 'status-false' }, 'unreadable: changed in the database');
                }
                return c.signature ? el('span', { class: 'status-true' }, `yes, key ${c.key_id}`) : el('span', { class: 'muted' }, 'no');
            }],
            ['', (c) => el('span', { class: 'actions' },
                actionButton('Download', `Download the checkpoint ${c.id}`, 'secondary', msg, () => {
                    download(`${c.id}.json`, [checkpointText(c)], 'application/json');
                }),
                actionButton('Verify against it', `Verify against the checkpoint ${c.id}`, 'secondary', msg, () => useForVerify(c)))],
        ], shown));
}

function verifyResult(r) {
    const facts = [
        `${r.records} records in ${r.chains} chains`,
        r.checkpoint_chains_matched !== undefined && r.checkpoint_chains_matched !== null
            ? `checkpoint: ${r.checkpoint_chains_matched} chains matched${r.checkpoint_chains_purged ? `, ${r.checkpoint_chains_purged} purged since` : ''}` : null,
        r.signatures_checked !== undefined && r.signatures_checked !== null ? `signatures checked: ${r.signatures_checked}` : null,
        r.purged ? `${r.purged} chains start where a purge checkpoint left them` : null,
        r.legacy ? `${r.legacy} records from before the trail` : null,
    ].filter(Boolean);
    return [
        el('strong', { class: r.intact ? 'status-true' : 'status-false' }, r.intact ? 'Intact' : `Broken: ${r.first_break}`),
        el('ul', { class: 'facts' }, facts.map((f) => el('li', {}, f))),
    ];
}

// Reads a chosen file into a text field (a checkpoint or a public key: small text files).
function fileInto(input, target, max, err) {
    input.addEventListener('change', async () => {
        const file = input.files[0];
        err.textContent = '';
        if (!file) {
            return;
        }
        if (file.size > max) {
            input.value = '';
            err.textContent = `${file.name} is larger than ${max} bytes: not such a file.`;
            return;
        }
        target.value = await file.text();
        target.dispatchEvent(new Event('input'));
    });
}

function verifySection() {
    const err = el('p', { class: 'error', role: 'alert' });
    const result = el('div', { id: 'audit-verify-result', role: 'status' });
    const cpText = el('textarea', { id: 'audit-verify-checkpoint', name: 'checkpoint', rows: '4', spellcheck: 'false' }, audit.verify.checkpoint);
    const keyText = el('textarea', { id: 'audit-verify-key', name: 'public_key', rows: '3', spellcheck: 'false', placeholder: '-----BEGIN PUBLIC KEY-----' }, audit.verify.public_key);
    cpText.addEventListener('input', () => { audit.verify.checkpoint = cpText.value; });
    keyText.addEventListener('input', () => { audit.verify.public_key = keyText.value; });
    const cpFile = el('input', { id: 'audit-verify-file', type: 'file', accept: '.json,.jsonl,application/json' });
    const keyFile = el('input', { id: 'audit-verify-keyfile', type: 'file', accept: '.pem,.pub,.txt' });
    fileInto(cpFile, cpText, 1 << 20, err);
    fileInto(keyFile, keyText, 16384, err);
    const since = el('input', { id: 'audit-verify-since', name: 'since', type: 'datetime-local', step: '1', value: audit.verify.since });
    since.addEventListener('input', () => { audit.verify.since = since.value; });
    const form = onSubmit(el('form', { id: 'audit-verify-form', 'aria-label': 'Verify against a checkpoint' },
        el('label', { for: 'audit-verify-file' }, 'Checkpoint file'), cpFile,
        el('label', { for: 'audit-verify-checkpoint' }, 'Checkpoint (the file\'s text; empty: check the chains alone)'), cpText,
        el('label', { for: 'audit-verify-keyfile' }, 'Public key file (PEM)'), keyFile,
        el('label', { for: 'audit-verify-key' }, 'Public key (PEM, optional: checks the checkpoint\'s signature, and each purge checkpoint\'s)'), keyText,
        el('label', { for: 'audit-verify-since' }, 'Check from (optional: each chain from its first record at or after)'), since,
        el('button', { type: 'submit' }, 'Verify')), err, async (f) => {
        const body = {};
        if (f.checkpoint.value.trim()) {
            body.checkpoint = f.checkpoint.value;
        }
        if (f.public_key.value.trim()) {
            body.public_key = f.public_key.value;
        }
        if (f.since.value) {
            body.since = Number(unixSeconds(f.since.value));
        }
        result.replaceChildren('Verifying…');
        try {
            result.replaceChildren(...verifyResult(await api('POST', '/audit/verify', body)));
        } catch (e) {
            result.replaceChildren();
            throw e;
        }
    });
    const details = el('details', { id: 'audit-verify', open: audit.open.verify },
        el('summary', {}, 'Verify against a checkpoint'),
        el('p', { class: 'muted' }, 'A checkpoint kept somewhere else proves that nothing it covers changed since it was made: '
            + 'each chain still has its count, and the record it ends with still has its hash, with every link before it intact.'),
        err, form, result);
    details.addEventListener('toggle', () => {
        audit.open.verify = details.open;
    });
    const use = (c) => {
        cpText.value = checkpointText(c);
        audit.verify.checkpoint = cpText.value;
        details.open = true;
        cpText.focus();
    };
    return { details, use };
}

function checkpointsSection(msg, useForVerify) {
    const box = el('div', { id: 'audit-checkpoints-list' });
    const said = el('p', { id: 'audit-checkpoint-made', role: 'status' });
    const load = () => loadCheckpoints(box, msg, useForVerify).catch((e) => showError(msg, e));
    const make = isAdmin() ? actionButton('Make a checkpoint', undefined, '', msg, async () => {
        const r = await api('POST', '/audit/checkpoints');
        const c = r.checkpoint;
        said.textContent = `Checkpoint ${c.id} made${c.signature ? ', signed' : ' (not signed: the server has no audit.signing_key)'}.`;
        await load();
    }, undefined, { id: 'audit-make-checkpoint' }) : '';
    const choice = (id, label, key, options) => {
        const sel = el('select', { id }, options.map(([v, text]) => el('option', { value: v, selected: audit.checkpoints[key] === v }, text)));
        sel.addEventListener('change', () => {
            audit.checkpoints[key] = sel.value;
            load();
        });
        return el('div', {}, el('label', { for: id }, label), sel);
    };
    const period = el('div', { class: 'filters' },
        choice('checkpoints-days', 'Made in the last', 'days', [['1', 'day'], ['7', '7 days'], ['30', '30 days'], ['365', 'year'], ['', 'any time']]),
        choice('checkpoints-kind', 'Kind', 'kind', [['', 'all'], ['periodic', 'periodic'], ['manual', 'manual'], ['purge', 'purge']]));
    const details = el('details', { id: 'audit-checkpoints', open: audit.open.checkpoints },
        el('summary', {}, 'Checkpoints'),
        el('p', { class: 'muted' }, 'Each chain\'s count and last hash at one moment, signed when the server has audit.signing_key. '
            + 'Keep copies where the database\'s writers cannot reach them.'),
        make ? el('div', { class: 'actions' }, make) : '', said, period, box);
    details.addEventListener('toggle', () => {
        // (Drawn open, it fires too: the list is loaded by the page then.)
        if (details.open && !audit.open.checkpoints) {
            load();
        }
        audit.open.checkpoints = details.open;
    });
    return details;
}

async function auditPage() {
    clearInterval(state.timer);
    const cats = await api('GET', '/audit/categories');
    const msg = el('p', { class: 'error', role: 'alert' });
    const tabs = el('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Categories' },
        ['', ...cats.categories].map((c) => el('button', {
            type: 'button', role: 'tab', 'aria-selected': String(audit.category === c), 'data-category': c,
            onclick: () => {
                audit.category = c;
                auditPage();
            },
        }, c || 'All')));
    const f = (name, label, attrs = {}) => el('div', {},
        el('label', { for: `audit-${name}` }, label),
        el('input', { id: `audit-${name}`, name, value: audit.filters[name] || '', ...attrs }));
    const filters = el('form', { class: 'filters', id: 'audit-filters', 'aria-label': 'Filters' },
        f('since', 'Since', { type: 'datetime-local', step: '1', value: audit.sinceLocal }),
        f('until', 'Until', { type: 'datetime-local', step: '1', value: audit.untilLocal }),
        f('instance', 'Instance'), f('credential', 'Performed by (ID)'), f('action', 'Action'),
        f('status', 'Status', { placeholder: '401 or 4', inputmode: 'numeric' }),
        el('button', { type: 'submit' }, 'Apply'));
    filters.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const e = filters.elements;
        audit.sinceLocal = e.since.value;
        audit.untilLocal = e.until.value;
        audit.filters = {
            instance: e.instance.value.trim(), credential: e.credential.value.trim(), action: e.action.value.trim(),
            status: e.status.value.trim(), since: unixSeconds(e.since.value), until: unixSeconds(e.until.value),
        };
        auditPage();
    });
    const body = el('tbody', { id: 'audit-rows' });
    const live = el('p', { class: 'muted', id: 'audit-live' }, 'Live: new records appear as they are written.');
    const verified = el('p', { id: 'audit-verified', role: 'status' });
    const exported = el('p', { id: 'audit-exported', role: 'status' });
    const verify = actionButton('Verify the trail', 'Verify the tamper-evident trail', 'secondary', msg, async () => {
        verified.textContent = 'Verifying…';
        const r = await api('GET', '/audit/verify');
        verified.textContent = r.intact ? `Intact: ${r.records} records in ${r.chains} chains.` : `Broken: ${r.first_break}`;
    });
    const exportButton = (format) => actionButton(`Export ${format.toUpperCase()}`, undefined, 'secondary', msg,
        () => exportAudit(format, exported), undefined, { id: `audit-export-${format}` });
    const against = verifySection();
    const checkpoints = checkpointsSection(msg, against.use);
    pageShell('Audit log', tabs, filters, msg,
        el('div', { class: 'actions' }, verify, exportButton('jsonl'), exportButton('csv')),
        el('p', { class: 'muted' }, 'Export: every record in the filters\' time range (since, until; all categories), oldest first, '
            + 'with its hashes; without Until, up to a minute ago.'),
        verified, exported, checkpoints, against.details, live, el('div', { class: 'table-wrap' }, el('table', {},
            el('caption', { class: 'muted' }, 'Audit records, newest first'),
            el('thead', {}, el('tr', {}, ['Time', 'Performed by', 'Action', 'Category', 'Instance', 'Status', 'Resource']
                .map((h) => el('th', { scope: 'col' }, h)))),
            body)));
    if (audit.open.checkpoints) {
        loadCheckpoints(document.getElementById('audit-checkpoints-list'), msg, against.use).catch((e) => showError(msg, e));
    }
    try {
        const data = await api('GET', `/audit?${auditQuery({ limit: 200 })}`);
        body.replaceChildren(...data.records.map(auditRow));
        audit.newest = data.records.length ? data.records[0].seq : audit.newest;
    } catch (e) {
        showError(msg, e);
    }
    state.timer = setInterval(async () => {
        try {
            const data = await api('GET', `/audit?${auditQuery({ after_seq: audit.newest, limit: 200 })}`);
            if (data.records.length) {
                body.prepend(...data.records.map(auditRow));
                audit.newest = Math.max(audit.newest, ...data.records.map((r) => r.seq));
            }
        } catch (e) {
            showError(msg, e);
        }
    }, 3000);
}

// Traffic: this node's requests and errors per instance, per minute, over the last hour, as bars
// (refreshed every 10 s). Instance names come from the instance list.
async function trafficPage() {
    clearInterval(state.timer);
    const [t, insts] = await Promise.all([api('GET', '/traffic'), api('GET', '/instances')]);
    const names = Object.fromEntries(insts.instances.map((i) => [i.id, i.name]));
    const sum = (a) => a.reduce((x, y) => x + y, 0);
    const bars = (req, err) => {
        const max = Math.max(1, ...req);
        return el('div', { class: 'bars', role: 'img', 'aria-label': `${sum(req)} requests, ${sum(err)} errors in the last hour, per minute` },
            req.map((r, k) => {
                const bar = el('span', { class: err[k] > 0 ? 'bar has-errors' : 'bar', title: `${r} requests, ${err[k]} errors` });
                // Through the CSSOM: the page's policy allows no style attributes.
                bar.style.height = `${Math.max(r ? 2 : 0, Math.round((r / max) * 40))}px`;
                return bar;
            }));
    };
    pageShell('Traffic',
        el('p', { class: 'muted' }, `Node ${t.node}: requests and errors (4xx and 5xx answers) per instance, per minute, since ${when(t.from)}.`),
        t.instances.length === 0 ? el('p', {}, 'No requests yet.') : table('Traffic per instance, last hour', [
            ['Instance', (i) => names[i.id] || i.id],
            ['Requests', (i) => String(sum(i.requests))],
            ['Errors', (i) => String(sum(i.errors))],
            ['Per minute', (i) => bars(i.requests, i.errors)],
        ], t.instances));
    state.timer = setInterval(() => {
        if (state.page === 'traffic') {
            trafficPage().catch(() => {});
        }
    }, 10000);
}

const pages = {
    instances: instancesPage, keys: keysPage, clients: clientsPage, operators: operatorsPage, audit: auditPage, traffic: trafficPage,
};

async function route() {
    if (!state.operator) {
        return;
    }
    clearInterval(state.timer);
    state.gen++;
    let name = location.hash.replace(/^#/, '') || 'instances';
    if (!pages[name] || (name === 'operators' && !isAdmin())) {
        name = 'instances';
    }
    state.page = name;
    // The address names the page shown, so that the page's own menu link is no navigation: from
    // /admin/ (no name) a click on Instances read the page again and drew it over a form being
    // filled. replaceState fires no hashchange.
    if (location.hash !== `#${name}`) {
        history.replaceState(null, '', `#${name}`);
    }
    for (const a of document.querySelectorAll('#nav a')) {
        if (a.dataset.page === name) {
            a.setAttribute('aria-current', 'page');
        } else {
            a.removeAttribute('aria-current');
        }
    }
    try {
        await pages[name]();
    } catch (e) {
        if (e.message !== 'signed out' && e.message !== 'stale') {
            pageShell('Something went wrong', el('p', { class: 'error', role: 'alert' }, e.message));
        }
    }
}

async function start() {
    document.getElementById('signin-form').addEventListener('submit', onSignIn);
    document.getElementById('signout').addEventListener('click', onSignOut);
    window.addEventListener('hashchange', route);
    const r = await fetch(`${API}/session`, { credentials: 'same-origin' });
    if (r.ok) {
        signedIn(await r.json());
    } else {
        showSignIn();
    }
}

start();
