#!/usr/bin/env node
// XFChat interop driver around the real `braid-http` npm client (pinned in
// package.json). pytest runs it as a subprocess and reads JSON lines on stdout.
//
//   node braid_client.mjs subscribe --url URL [--token T] [--parents V1,V2]
//                                   [--heartbeats SECONDS] --count N --timeout SECONDS
//   node braid_client.mjs put --url URL [--token T] --version V [--parents P1,P2]
//                             --body JSON [--timeout SECONDS]
//
// subscribe prints:
//   {"event":"open","status":209,"headers":{...}}
//   {"event":"update","status":"200"|null,"version":[..]|null,"parents":[..]|null,
//    "body":<JSON>|null,"patches":[{"unit","range","content":<JSON>}]|null,"extra_headers":{..}}
//   {"event":"done"}                      exit 0 after N updates
//   {"event":"timeout","received":k}      exit 2
//   {"event":"error","message":..,"status":..|null,"body":..|null}   exit 1
// put prints:
//   {"event":"put","status":N,"body":"<response text>","headers":{...}}  exit 0 if 2xx else 1
//   {"event":"error",...}                 exit 1 on network error / timeout

// braid-http 1.3.80 writes diagnostics with console.debug/console.log (e.g.
// "Connection closed." when the stream ends). Those go to stdout in Node and
// would corrupt the JSON-lines protocol, so send them to stderr.
for (const name of ['log', 'debug', 'info'])
    console[name] = (...args) => console.error(...args)

import { fetch as braid_fetch } from 'braid-http'

const USAGE = `usage:
  node braid_client.mjs subscribe --url URL [--token TOKEN] [--parents V1,V2] [--heartbeats SECONDS] --count N --timeout SECONDS
  node braid_client.mjs put --url URL [--token TOKEN] --version V [--parents P] --body JSON [--timeout SECONDS]`

let finished = false

function emit (obj) {
    process.stdout.write(JSON.stringify(obj) + '\n')
}

// Print a final line (if any) and exit once stdout has been flushed.
function finish (code, obj) {
    if (finished) return
    finished = true
    process.exitCode = code
    const line = obj ? JSON.stringify(obj) + '\n' : ''
    process.stdout.write(line, () => process.exit(code))
}

function error_message (e) {
    if (e == null) return 'unknown error'
    if (typeof e === 'string') return e      // braid-http reports 'Connection closed' as a bare string
    let msg = e.message || String(e)
    if (e.cause) msg += ` (cause: ${e.cause.code || e.cause.message || e.cause})`
    return msg
}

function decode (x) {
    if (x == null) return null
    if (typeof x === 'string') return x
    if (x instanceof ArrayBuffer) return new TextDecoder('utf-8').decode(new Uint8Array(x))
    if (ArrayBuffer.isView(x))
        return new TextDecoder('utf-8').decode(new Uint8Array(x.buffer, x.byteOffset, x.byteLength))
    if (Array.isArray(x)) return new TextDecoder('utf-8').decode(Uint8Array.from(x))
    return String(x)
}

function parse_json (text, what) {
    try {
        return JSON.parse(text)
    } catch (e) {
        throw new Error(`${what} is not valid JSON: ${JSON.stringify(text)}`)
    }
}

function parse_args (argv) {
    const [cmd, ...rest] = argv
    const opts = {}
    for (let i = 0; i < rest.length; i++) {
        const a = rest[i]
        if (!a.startsWith('--')) throw new Error(`unexpected argument: ${a}`)
        let key = a.slice(2), val
        const eq = key.indexOf('=')
        if (eq >= 0) { val = key.slice(eq + 1); key = key.slice(0, eq) }
        else {
            if (i + 1 >= rest.length) throw new Error(`missing value for --${key}`)
            val = rest[++i]
        }
        opts[key] = val
    }
    return { cmd, opts }
}

function list (s) {
    // "V1,V2" -> ["V1","V2"]; version ids containing commas are not supported here
    return s.split(',').map(x => x.trim()).filter(x => x.length)
}

function number (opts, key, dflt) {
    if (opts[key] === undefined) {
        if (dflt === undefined) throw new Error(`--${key} is required`)
        return dflt
    }
    const n = Number(opts[key])
    if (!isFinite(n) || n < 0) throw new Error(`--${key} must be a non-negative number`)
    return n
}

function auth_headers (opts) {
    return opts.token !== undefined ? { Authorization: `Bearer ${opts.token}` } : {}
}

async function subscribe (opts) {
    if (!opts.url) throw new Error('--url is required')
    const count = number(opts, 'count', 1)
    const timeout = number(opts, 'timeout', 10)

    const aborter = new AbortController()
    let received = 0
    let status = null

    setTimeout(() => {
        aborter.abort()
        finish(2, { event: 'timeout', received })
    }, timeout * 1000)

    const params = {
        subscribe: true,
        headers: auth_headers(opts),
        signal: aborter.signal,
    }
    if (opts.parents !== undefined) params.parents = list(opts.parents)
    if (opts.heartbeats !== undefined) params.heartbeats = number(opts, 'heartbeats')

    let res
    try {
        res = await braid_fetch(opts.url, params)
    } catch (e) {
        return finish(1, { event: 'error', message: error_message(e), status: null, body: null })
    }
    status = res.status

    const on_update = async (update) => {
        if (finished) return
        try {
            let body = null, patches = null
            if (update.body != null)
                body = parse_json(decode(update.body), 'snapshot body')
            if (update.patches)
                patches = update.patches.map(p => ({
                    unit: p.unit ?? null,
                    range: p.range ?? null,
                    content: parse_json(decode(p.content), 'patch content'),
                }))
            emit({
                event: 'update',
                status: update.status ?? null,
                version: update.version ?? null,
                parents: update.parents ?? null,
                body,
                patches,
                extra_headers: update.extra_headers ?? {},
            })
        } catch (e) {
            aborter.abort()
            return finish(1, { event: 'error', message: error_message(e), status })
        }
        received++
        if (received >= count) {
            aborter.abort()
            finish(0, { event: 'done' })
        }
    }

    const on_error = (e) => {
        if (finished) return
        aborter.abort()
        finish(1, { event: 'error', message: error_message(e), status })
    }

    try {
        // .subscribe() throws synchronously unless the status is 209
        res.subscribe(on_update, on_error)
    } catch (e) {
        let body = null
        try { body = await res.text() } catch (_) {}
        return finish(1, { event: 'error', message: error_message(e), status, body })
    }
    emit({ event: 'open', status, headers: Object.fromEntries(res.headers) })
}

async function put (opts) {
    if (!opts.url) throw new Error('--url is required')
    if (opts.version === undefined) throw new Error('--version is required')
    if (opts.body === undefined) throw new Error('--body is required')
    const timeout = number(opts, 'timeout', 10)

    const aborter = new AbortController()
    setTimeout(() => {
        aborter.abort()
        finish(1, { event: 'error', message: `timeout after ${timeout}s`, status: null, body: null })
    }, timeout * 1000)

    const params = {
        method: 'PUT',
        version: [opts.version],
        headers: { 'Content-Type': 'application/json', ...auth_headers(opts) },
        body: opts.body,
        signal: aborter.signal,
    }
    if (opts.parents !== undefined) params.parents = list(opts.parents)

    let res, text
    try {
        res = await braid_fetch(opts.url, params)
        text = await res.text()
    } catch (e) {
        return finish(1, { event: 'error', message: error_message(e), status: res?.status ?? null, body: null })
    }
    finish(res.status >= 200 && res.status < 300 ? 0 : 1,
           { event: 'put', status: res.status, body: text, headers: Object.fromEntries(res.headers) })
}

async function main () {
    let args
    try {
        args = parse_args(process.argv.slice(2))
        if (args.cmd === 'subscribe') await subscribe(args.opts)
        else if (args.cmd === 'put') await put(args.opts)
        else throw new Error(`unknown subcommand: ${args.cmd ?? '(none)'}\n${USAGE}`)
    } catch (e) {
        finish(1, { event: 'error', message: error_message(e), status: null, body: null })
    }
}

main()
