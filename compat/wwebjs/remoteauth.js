#!/usr/bin/env node
// remoteauth.js runs whatsapp-web.js RemoteAuth's own restore and backup code (the version pinned in
// package.json) on a profile directory, so that wwebstore can prove that archives travel both ways
// (remoteauth/wwebjs_test.go) and measure RemoteAuth side by side with wwebstore (bench.sh).
//
//   node remoteauth.js restore <dataPath> <clientId> <archive.zip>
//       RemoteAuth's start-up path: beforeBrowserInitialized() → extractRemoteSession() →
//       store.extract() + unCompressSession() (unzipper) into <dataPath>/RemoteAuth-<clientId>.
//   node remoteauth.js backup <dataPath> <clientId> <outArchive.zip>
//       RemoteAuth's save path: storeRemoteSession() → compressSession() (fs.promises.cp into the
//       temp dir, archiver zip) → store.save(), whose copy of the zip is written to outArchive.zip.
//
// Nothing of RemoteAuth is reimplemented: the script only gives it what a Client and a store would.
// It prints one JSON line on stdout:
//   {"op", "ms": until RemoteAuth's promise resolved, "doneMs": until every stream it started had
//    ended (the event loop drained), "maxRSSMiB": process peak RSS, "startRSSMiB", "archiveBytes",
//    "files", "bytes": what the profile dir holds at the end, "remoteSessionSaved" (backup)}
// With --check-resolve (restore), it also counts the profile's files the moment RemoteAuth's
// promise resolves (filesAtResolve, bytesAtResolve): unCompressSession resolves on the 'finish'
// of unzipper's Extract, which fires when the archive has been read, not when the files are written.
'use strict';

const fs = require('fs');
const path = require('path');
const { pipeline } = require('stream/promises');
const { performance } = require('perf_hooks');
const RemoteAuth = require('whatsapp-web.js/src/authStrategies/RemoteAuth');
const { Events } = require('whatsapp-web.js/src/util/Constants');

const startRSS = process.memoryUsage().rss;

function usage() {
    process.stderr.write(
        'usage: node remoteauth.js restore <dataPath> <clientId> <archive.zip> [--check-resolve]\n' +
            '       node remoteauth.js backup  <dataPath> <clientId> <outArchive.zip>\n',
    );
    process.exit(2);
}

// FileStore is a remote store the way the community stores for RemoteAuth (wwebjs-mongo,
// wwebjs-aws-s3) are written: sessionExists/save/extract/delete take {session} (and extract a
// {path}); save uploads "<session>.zip" read from the working directory, since RemoteAuth passes
// no path to it; extract downloads the archive to the path RemoteAuth gives.
class FileStore {
    // archive: the one file that holds the session's archive, read by extract and written by save.
    constructor(sessionName, archive) {
        this.sessionName = sessionName;
        this.archive = archive;
    }

    async sessionExists({ session }) {
        if (session !== this.sessionName) return false;
        try {
            await fs.promises.access(this.archive);
            return true;
        } catch {
            return false;
        }
    }

    async save({ session }) {
        await pipeline(fs.createReadStream(`${session}.zip`), fs.createWriteStream(this.archive));
    }

    async extract({ session, path: dest }) {
        if (session !== this.sessionName) throw new Error(`no session ${session}`);
        await pipeline(fs.createReadStream(this.archive), fs.createWriteStream(dest));
    }

    async delete({ session }) {
        if (session === this.sessionName) await fs.promises.rm(this.archive, { force: true });
    }
}

// fakeClient is the part of whatsapp-web.js's Client that RemoteAuth touches on these paths:
// options.puppeteer (read and replaced by beforeBrowserInitialized) and emit (storeRemoteSession
// emits remote_session_saved).
function fakeClient() {
    return {
        options: { puppeteer: {} },
        emitted: [],
        emit(event, ...args) {
            this.emitted.push(event);
            return true;
        },
    };
}

function countTree(dir) {
    let files = 0;
    let bytes = 0;
    let entries;
    try {
        entries = fs.readdirSync(dir, { recursive: true, withFileTypes: true });
    } catch (err) {
        if (err.code === 'ENOENT') return { files, bytes };
        throw err;
    }
    for (const e of entries) {
        if (e.isFile()) {
            files++;
            bytes += fs.statSync(path.join(e.parentPath ?? e.path, e.name)).size;
        }
    }
    return { files, bytes };
}

const mib = (n) => Math.round((n / (1 << 20)) * 10) / 10;

async function main() {
    const args = process.argv.slice(2);
    const checkResolve = args.includes('--check-resolve');
    const [op, dataPathArg, clientId, archiveArg, ...rest] = args.filter((a) => a !== '--check-resolve');
    if (!['restore', 'backup'].includes(op) || !archiveArg || rest.length > 0) usage();
    const dataPath = path.resolve(dataPathArg);
    const archive = path.resolve(archiveArg);
    const sessionName = clientId ? `RemoteAuth-${clientId}` : 'RemoteAuth';
    fs.mkdirSync(dataPath, { recursive: true });

    // RemoteAuth (since 1.34.5) writes the zip to <dataPath>/<session>.zip, but calls
    // store.save({session}) without that path, and the stores read "<session>.zip" from the
    // working directory: from any other directory, every save fails with ENOENT. Running with
    // the working directory at dataPath is the workaround its users apply; it changes nothing in
    // how RemoteAuth zips or unzips.
    process.chdir(dataPath);

    const store = new FileStore(sessionName, archive);
    const auth = new RemoteAuth({ clientId, dataPath, store, backupSyncIntervalMs: 60000 });
    const client = fakeClient();
    auth.setup(client);

    const result = { op, dataPath, session: sessionName, archive };
    const t0 = performance.now();
    if (op === 'restore') {
        // The Client's first call on its auth strategy, before it launches the browser.
        await auth.beforeBrowserInitialized();
        result.ms = Math.round(performance.now() - t0);
        if (client.options.puppeteer.userDataDir !== auth.userDataDir) {
            throw new Error('RemoteAuth did not set puppeteer.userDataDir');
        }
        if (checkResolve) {
            const c = countTree(auth.userDataDir);
            result.filesAtResolve = c.files;
            result.bytesAtResolve = c.bytes;
        }
        result.archiveBytes = fs.statSync(archive).size;
    } else {
        // What beforeBrowserInitialized sets; calling it would wipe the profile to back up.
        auth.userDataDir = path.join(dataPath, sessionName);
        auth.sessionName = sessionName;
        if (!fs.existsSync(auth.userDataDir)) throw new Error(`no profile at ${auth.userDataDir}`);
        fs.rmSync(archive, { force: true });
        // The first save after 'ready' (afterAuthReady, without its fixed 60 s delay).
        await auth.storeRemoteSession({ emit: true });
        result.ms = Math.round(performance.now() - t0);
        result.remoteSessionSaved = client.emitted.includes(Events.REMOTE_SESSION_SAVED);
        if (!fs.existsSync(archive)) throw new Error('RemoteAuth saved nothing');
        result.archiveBytes = fs.statSync(archive).size;
    }

    // Report once every stream RemoteAuth started has ended.
    process.once('beforeExit', () => {
        result.doneMs = Math.round(performance.now() - t0);
        const profile = op === 'restore' ? auth.userDataDir : path.join(dataPath, sessionName);
        Object.assign(result, countTree(profile));
        result.startRSSMiB = mib(startRSS);
        result.maxRSSMiB = mib(process.resourceUsage().maxRSS * 1024);
        process.stdout.write(JSON.stringify(result) + '\n');
    });
}

main().catch((err) => {
    process.stderr.write(`remoteauth.js: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
