// What a user of the official Node SDK (`cloudconvert` 3.x from npm) writes to use ccweb's engine
// instead of api.cloudconvert.com: the only change is the base URL (see PROTOCOL.md §8).
// Run by tests/test_engine_sdk_node.py; prints one line of JSON that the test asserts on.
//
// Environment: SDK_DIR (the folder whose node_modules holds the SDK), ENGINE_URL, ENGINE_API_KEY,
// INPUT_PNG, OUTPUT_JPG, WEBHOOK_PAYLOAD_FILE, WEBHOOK_SIGNATURE, WEBHOOK_SECRET.
//
// Node 18 (Debian bookworm) is enough for what this uses: global fetch, web streams, and a file
// stream as the upload source (a Blob source would need Blob.bytes(), Node >= 20.16).

import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const env = (name) => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set`);
    return value;
};

// The SDK is installed outside the repository (var/node-sdk), so resolve it from there.
const require = createRequire(join(env('SDK_DIR'), 'package.json'));
const CloudConvert = require('cloudconvert');
const sdkVersion = require('cloudconvert/package.json').version;

const engine = env('ENGINE_URL').replace(/\/+$/, '');
const engineOrigin = new URL(engine).origin;

// Every request the SDK (or this script) makes must reach the engine, never cloudconvert.com.
const requests = [];
const anonymous = []; // the ones sent without the API key
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const request = `${init?.method ?? 'GET'} ${url.pathname}`;
    requests.push(request);
    if (!new Headers(init?.headers).has('authorization')) anonymous.push(request);
    if (url.origin !== engineOrigin) {
        return Promise.reject(new Error(`request outside the engine: ${url.href}`));
    }
    return realFetch(input, init);
};

// The SDK has no base URL option: override callWithBase, the one method every call goes through.
// call() passes https://api.cloudconvert.com/v2/, the wait() methods https://sync.api.cloudconvert.com/v2/
// (or a region-/sandbox- prefixed variant); map each to the engine's counterpart, keeping the slash.
class EngineCloudConvert extends CloudConvert {
    callWithBase(baseURL, method, route, parameters, options) {
        const sync = new URL(baseURL).hostname.split('.').includes('sync');
        const base = sync ? `${engine}/sync/v2/` : `${engine}/v2/`;
        return super.callWithBase(base, method, route, parameters, options);
    }
}

const cc = new EngineCloudConvert(env('ENGINE_API_KEY'));
const report = { sdk_version: sdkVersion, node_version: process.versions.node };

// users.me
const me = await cc.users.me();
report.me = { id: me.id, username: me.username, email: me.email };

// jobs.create: upload, png -> jpg, export/url
let job = await cc.jobs.create({
    tag: 'node-sdk',
    tasks: {
        upload: { operation: 'import/upload' },
        convert: { operation: 'convert', input: 'upload', input_format: 'png', output_format: 'jpg', quality: 85 },
        export: { operation: 'export/url', input: 'convert' }
    }
});
report.created = { status: job.status, tasks: Object.fromEntries(job.tasks.map((t) => [t.name, t.status])) };

// tasks.upload of the test's PNG, from a file stream (name and size come from its path)
const uploadTask = job.tasks.find((t) => t.name === 'upload');
const uploaded = await cc.tasks.upload(uploadTask, createReadStream(env('INPUT_PNG')));
report.upload_returned = uploaded === undefined ? null : typeof uploaded;

// jobs.wait (the sync host), then the export URL, downloaded with fetch
job = await cc.jobs.wait(job.id);
report.waited = { status: job.status, tasks: Object.fromEntries(job.tasks.map((t) => [t.name, t.status])) };
const exported = cc.jobs.getExportUrls(job);
report.export_files = exported.map((f) => ({ filename: f.filename, size: f.size }));
const file = exported[0];
const download = await fetch(file.url);
const bytes = Buffer.from(await download.arrayBuffer());
writeFileSync(env('OUTPUT_JPG'), bytes);
report.download = { status: download.status, content_type: download.headers.get('content-type'), bytes: bytes.length };

// jobs.all with filter[status], while a second job waits for its upload
const later = await cc.jobs.create({ tag: 'node-sdk-later', tasks: { later: { operation: 'import/upload' } } });
report.later_job_id = later.id;
report.jobs_finished = (await cc.jobs.all({ 'filter[status]': 'finished' })).map((j) => j.id);
report.jobs_waiting = (await cc.jobs.all({ 'filter[status]': 'waiting' })).map((j) => j.id);
report.job_tasks_listed = (await cc.tasks.all({ 'filter[job_id]': job.id })).length;

// tasks.cancel of that waiting upload task: error / CANCELLED, and so is its job
const waiting = later.tasks[0];
const cancelled = await cc.tasks.cancel(waiting.id);
const cancelledAgain = await cc.tasks.get(waiting.id);
report.cancel = {
    before: waiting.status,
    form: Boolean(waiting.result?.form?.url),
    status: cancelled.status,
    code: cancelled.code,
    fetched: [cancelledAgain.status, cancelledAgain.code],
    job: (await cc.jobs.get(later.id)).status
};

// tasks.create('import/url') of the engine's own export link, then tasks.wait
const imported = await cc.tasks.create('import/url', { url: file.url, filename: 'again.jpg' });
const importedDone = await cc.tasks.wait(imported.id);
report.import_url = {
    id: imported.id,
    created: imported.status,
    status: importedDone.status,
    files: (importedDone.result?.files ?? []).map((f) => f.filename)
};

// Retry of the convert task. The Node SDK 3.x has no tasks.retry(); its generic call() does it.
const convertTask = job.tasks.find((t) => t.name === 'convert');
const retried = typeof cc.tasks.retry === 'function'
    ? await cc.tasks.retry(convertTask.id)
    : await cc.call('POST', `tasks/${convertTask.id}/retry`);
const retriedDone = await cc.tasks.wait(retried.id);
report.retry = {
    id: retried.id,
    sdk_method: typeof cc.tasks.retry === 'function',
    retry_of: retried.retry_of_task_id,
    original: convertTask.id,
    status: retriedDone.status
};

// Errors: the SDK throws Error(statusText, { cause: Response })
async function failure(promise) {
    try {
        await promise;
        return null;
    } catch (error) {
        const response = error.cause;
        const body = response instanceof Response ? await response.json() : null;
        return { message: error.message, status: response?.status ?? null, code: body?.code ?? null };
    }
}
report.unknown_job = await failure(cc.jobs.get('00000000-0000-4000-8000-000000000000'));

// tasks.delete and jobs.delete return nothing; the deleted job is then a 404
report.task_deleted = (await cc.tasks.delete(retried.id)) === undefined;
report.job_deleted = (await cc.jobs.delete(job.id)) === undefined;
report.deleted_job = await failure(cc.jobs.get(job.id));
report.job_id = job.id;

// webhooks.verify with a signature the Python test computed over the payload's bytes
const payload = readFileSync(env('WEBHOOK_PAYLOAD_FILE'), 'utf-8');
const signature = env('WEBHOOK_SIGNATURE');
const secret = env('WEBHOOK_SECRET');
report.webhook = {
    valid: cc.webhooks.verify(payload, signature, secret),
    tampered: cc.webhooks.verify(payload.replace('finished', 'failed'), signature, secret),
    wrong_secret: cc.webhooks.verify(payload, signature, `${secret}x`)
};

report.requests = requests;
report.anonymous = anonymous;
console.log(JSON.stringify(report));
