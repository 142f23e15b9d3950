// Launch options for Debian's Chromium under playwright-core. The flags come from
// ../shared/ENV.md: the machine has no outside network, so background traffic is switched off.
export const CHROMIUM_OPTIONS = {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
};
