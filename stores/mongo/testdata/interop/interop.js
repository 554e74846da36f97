// The Node.js side of TestInteropWwebjsMongo: runs one wwebjs-mongo MongoStore method.
//
//   node interop.js URI DB exists  SESSION           prints true or false
//   node interop.js URI DB save    SESSION           uploads ./SESSION.zip (wwebjs-mongo reads it from the working directory)
//   node interop.js URI DB extract SESSION PATH      writes the archive to PATH
//   node interop.js URI DB delete  SESSION
const mongoose = require('mongoose');
const { MongoStore } = require('wwebjs-mongo');

async function main() {
	const [uri, dbName, op, session, path] = process.argv.slice(2);
	await mongoose.connect(uri, { dbName, serverSelectionTimeoutMS: 10000 });
	try {
		const store = new MongoStore({ mongoose });
		switch (op) {
		case 'exists':
			console.log(String(await store.sessionExists({ session })));
			break;
		case 'save':
			await store.save({ session });
			break;
		case 'extract':
			await store.extract({ session, path });
			break;
		case 'delete':
			await store.delete({ session });
			await new Promise(r => setTimeout(r, 500)); // wwebjs-mongo does not await its deletes
			break;
		default:
			throw new Error('unknown operation ' + op);
		}
	} finally {
		await mongoose.disconnect();
	}
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
