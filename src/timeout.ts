/**
 * Answers `probe` within `timeoutMs`, or `false` when it is slower or throws: the shape of
 * every readiness check (a service that hangs is as down as one that refuses).
 */
export async function answersWithin(probe: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      probe(),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
