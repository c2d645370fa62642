export default async function globalTeardown(): Promise<void> {
  const started = (globalThis as Record<string, unknown>).__GW_TEST_PG__ as { stop: () => Promise<void> } | undefined;
  await started?.stop();
}
