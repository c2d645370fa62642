// Jest: unit (*.spec.ts), real-database (*.int-spec.ts) and end-to-end (test/e2e) tiers.
const { readFileSync } = require('node:fs');

/** tsconfig.json `paths` as Jest module mappings (`@gw/x` → its index, `@gw/testing/*` → test/support/*). */
function aliasesFromTsconfig() {
  const { paths } = JSON.parse(readFileSync(`${__dirname}/tsconfig.json`, 'utf8')).compilerOptions;
  const escape = (text) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return Object.fromEntries(
    Object.entries(paths).map(([alias, [target]]) => [
      `^${escape(alias).replace('\\*', '(.*)')}$`,
      `<rootDir>/${target.replace('*', '$1')}`,
    ]),
  );
}
const swc = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
  },
  module: { type: 'commonjs' },
};
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/apps', '<rootDir>/libs', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.int-spec.ts', '**/*.e2e-spec.ts'],
  // fhir-kit-client 2 and jose 6 ship ESM only (Node 20.19+ loads them natively; Jest's module
  // system does not): swc turns them into CommonJS for the tests.
  transform: {
    '^.+\\.ts$': ['@swc/jest', swc],
    '^.+/node_modules/(fhir-kit-client|jose)/.+\\.js$': ['@swc/jest', swc],
  },
  transformIgnorePatterns: ['/node_modules/(?!(fhir-kit-client|jose)/)'],
  moduleNameMapper: {
    // One alias list: tsconfig.json's paths (the libs, and @gw/testing/* for test/support).
    ...aliasesFromTsconfig(),
    '^fhir-kit-client$': '<rootDir>/node_modules/fhir-kit-client/dist/index.js',
  },
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testTimeout: 60000,
};
