// The blnkproxy console: plain JavaScript over the admin API (/admin/api/, docs/ADMIN_API.md),
// no framework and no build step. Everything shown is built with textContent, never innerHTML:
// audit records carry paths and names that any client can choose.
'use strict';

const API = '/admin/api';
const state = { operator: null, csrf: null, page: null, timer: null };

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
    for (const c of children.flat()) {
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
    const r = await fetch(API + path, {
        method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = r.status === 204 ? null : await r.json().catch(() => null);
    if (r.status === 401 && path !== '/session') {
        showSignIn('Your session has ended: sign in again.');
        throw new Error('signed out');
    }
    if (!r.ok) {
        throw new Error(json && json.error ? json.error : `HTTP ${r.status}`);
    }
    return json;
}

function showError(where, e) {
    if (e.message !== 'signed out') {
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
function actionButton(label, aria, cls, msg, run, confirmText) {
    return el('button', {
        type: 'button', class: cls, 'aria-label': aria,
        onclick: async () => {
            if (confirmText && !window.confirm(confirmText)) {
                return;
            }
            try {
                await run();
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

async function instancesPage() {
    const data = await api('GET', '/instances');
    const msg = el('p', { class: 'error', role: 'alert' });
    const rows = table('Core instances', [
        ['Name', (i) => i.name],
        ['ID', (i) => code(i.id)],
        ['URL', (i) => i.url],
        ['Secret key', (i) => (i.has_secret_key ? 'set' : 'none')],
        ['Enabled', (i) => status(i.enabled)],
        ['', (i) => (isAdmin() ? el('span', { class: 'actions' },
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
    const content = [msg, checked, rows];
    if (isAdmin()) {
        const form = el('form', { id: 'instance-form', 'aria-labelledby': 'instance-add-title' },
            el('label', { for: 'instance-name' }, 'Name'), el('input', { id: 'instance-name', name: 'name', required: true }),
            el('label', { for: 'instance-url' }, 'URL'),
            el('input', { id: 'instance-url', name: 'url', type: 'url', required: true, placeholder: 'https://core.example:5001' }),
            el('label', { for: 'instance-secret' }, 'Core secret key (entered once, never shown again)'),
            el('input', { id: 'instance-secret', name: 'secret_key', type: 'password', autocomplete: 'off' }),
            el('button', { type: 'submit' }, 'Add instance'));
        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            const body = { name: form.elements.name.value, url: form.elements.url.value };
            if (form.elements.secret_key.value) {
                body.secret_key = form.elements.secret_key.value;
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
}

async function keysPage() {
    const [data, insts] = await Promise.all([api('GET', '/keys'), api('GET', '/instances')]);
    const msg = el('p', { class: 'error', role: 'alert' });
    const created = el('div', { id: 'created' });
    const rows = table('API keys', [
        ['Name', (k) => k.name],
        ['ID', (k) => code(k.id)],
        ['Prefix', (k) => code(k.prefix)],
        ['Scopes', (k) => k.scopes.join(', ')],
        ['Instances', (k) => list(k.instances)],
        ['Status', (k) => status(k.status)],
        ['Expires', (k) => when(k.expires_at)],
        ['Last used', (k) => when(k.last_used_at)],
        ['', (k) => (isAdmin() && k.status === 'active' ? el('span', { class: 'actions' },
            k.replaced_by ? '' : actionButton('Rotate', `Rotate ${k.name}`, 'secondary', msg, async () => {
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
    content.splice(2, 0, rows);
    pageShell('API keys', ...content);
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
            el('button', { type: 'submit' }, 'Create client'));
        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            const scopes = [...form.querySelectorAll('input[name=scope]:checked')].map((c) => c.value);
            const uris = form.elements.redirect_uris.value.split('\n').map((u) => u.trim()).filter(Boolean);
            try {
                const c = await api('POST', '/clients', { name: form.elements.name.value, scopes, redirect_uris: uris });
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
        ['Status', (c) => status(c.status)],
        ['', (c) => (isAdmin() && c.status === 'active' ? el('span', { class: 'actions' },
            actionButton('Rotate secret', `Rotate the secret of ${c.name}`, 'secondary', msg, async () => {
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
    ], data.clients));
    pageShell('OAuth clients', ...content);
}

async function operatorsPage() {
    const data = await api('GET', '/operators');
    const msg = el('p', { class: 'error', role: 'alert' });
    const created = el('div', { id: 'created' });
    const me = (o) => o.id === state.operator.id;
    const roleSelect = (o) => {
        const sel = el('select', { 'aria-label': `Role of ${o.name}`, disabled: me(o) },
            ['admin', 'auditor', 'approver'].map((r) => el('option', { value: r, selected: r === o.role }, r)));
        sel.addEventListener('change', async () => {
            try {
                await api('POST', `/operators/${encodeURIComponent(o.id)}/role`, { role: sel.value });
                route();
            } catch (e) {
                showError(msg, e);
            }
        });
        return sel;
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
            actionButton('New admin token', `New admin token for ${o.name}`, 'secondary', msg, async () => {
                const name = window.prompt(`What is the token for? (${o.name}'s token, 90 days)`, 'automation');
                if (!name) {
                    return;
                }
                const t = await api('POST', `/operators/${encodeURIComponent(o.id)}/tokens`, { name, expires_in: '90d' });
                document.getElementById('created').replaceChildren(shownOnce(`Admin token for ${o.name}`, t.token));
                document.getElementById('copy-secret').focus();
            }))],
    ], data.operators), el('h2', { id: 'operator-create-title' }, 'Add an operator'), form);
}

// The audit log: category tabs, filters, newest first, and live updates every 3 s.
const audit = { category: '', newest: 0, filters: {}, sinceLocal: '' };

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
        f('since', 'Since', { type: 'datetime-local', value: audit.sinceLocal }),
        f('instance', 'Instance'), f('credential', 'Performed by (ID)'), f('action', 'Action'),
        f('status', 'Status', { placeholder: '401 or 4', inputmode: 'numeric' }),
        el('button', { type: 'submit' }, 'Apply'));
    filters.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const e = filters.elements;
        audit.sinceLocal = e.since.value;
        audit.filters = {
            instance: e.instance.value.trim(), credential: e.credential.value.trim(), action: e.action.value.trim(),
            status: e.status.value.trim(),
            since: e.since.value ? String(Math.floor(new Date(e.since.value).getTime() / 1000)) : '',
        };
        auditPage();
    });
    const body = el('tbody', { id: 'audit-rows' });
    const live = el('p', { class: 'muted', id: 'audit-live' }, 'Live: new records appear as they are written.');
    const verified = el('p', { id: 'audit-verified', role: 'status' });
    const verify = actionButton('Verify the trail', 'Verify the tamper-evident trail', 'secondary', msg, async () => {
        verified.textContent = 'Verifying…';
        const r = await api('GET', '/audit/verify');
        verified.textContent = r.intact ? `Intact: ${r.records} records in ${r.chains} chains.` : `Broken: ${r.first_break}`;
    });
    pageShell('Audit log', tabs, filters, msg, el('div', { class: 'actions' }, verify), verified, live, el('div', { class: 'table-wrap' }, el('table', {},
        el('caption', { class: 'muted' }, 'Audit records, newest first'),
        el('thead', {}, el('tr', {}, ['Time', 'Performed by', 'Action', 'Category', 'Instance', 'Status', 'Resource']
            .map((h) => el('th', { scope: 'col' }, h)))),
        body)));
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
    let name = location.hash.replace(/^#/, '') || 'instances';
    if (!pages[name] || (name === 'operators' && !isAdmin())) {
        name = 'instances';
    }
    state.page = name;
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
        if (e.message !== 'signed out') {
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
