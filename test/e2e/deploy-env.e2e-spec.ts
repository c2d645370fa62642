import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CONFIG_VARIABLES } from '@gw/platform';

const DEPLOY = resolve(__dirname, '../../deploy');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

function namesIn(file: string): Set<string> {
  return new Set(readFileSync(file, 'utf8').match(/\bGW_[A-Z0-9_]+\b/g) ?? []);
}

describe('deploy/ manifests', () => {
  const known = new Set<string>(CONFIG_VARIABLES);

  it.each(files(DEPLOY).map((f) => [f.slice(DEPLOY.length + 1), f]))(
    '%s uses only variables of the config schema',
    (_name, file) => {
      const unknown = [...namesIn(file)].filter((n) => !known.has(n));
      expect(unknown).toEqual([]);
    },
  );

  it('docker-compose runs the gateway on external PostgreSQL and Redis, and workers out of process', () => {
    const compose = readFileSync(join(DEPLOY, 'docker-compose.yml'), 'utf8');
    for (const name of [
      'GW_DATABASE_URL',
      'GW_REDIS_URL',
      'GW_HTTP_HOST',
      'GW_WORKERS_INPROCESS',
      'GW_WORKER_QUEUES',
    ]) {
      expect(compose).toContain(`${name}:`);
    }
    expect(compose).toMatch(/worker:[\s\S]*dist\/apps\/worker\/src\/main\.js/);
  });

  it('Kubernetes manifests give the gateway and the worker the same configuration keys', () => {
    const k8s = files(join(DEPLOY, 'k8s'))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    expect(k8s).toContain('configMapRef: { name: fhir-gateway }');
    expect(k8s).toContain('secretRef: { name: fhir-gateway }');
    const k8sNames = namesIn(join(DEPLOY, 'k8s/configmap.yaml'));
    const composeNames = [...namesIn(join(DEPLOY, 'docker-compose.yml'))];
    expect(composeNames.length).toBeGreaterThan(5);
    expect(composeNames.filter((n) => !k8sNames.has(n))).toEqual([]);
  });
});
