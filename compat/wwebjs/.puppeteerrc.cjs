// Puppeteer's configuration file (https://pptr.dev/guides/configuration): whatsapp-web.js depends on
// puppeteer, whose postinstall would download Chrome. remoteauth.js runs RemoteAuth without a
// browser, so npm install/ci here never downloads one, with or without PUPPETEER_SKIP_DOWNLOAD.
module.exports = { skipDownload: true };
