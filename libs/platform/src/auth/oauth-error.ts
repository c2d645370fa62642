/** An OAuth2 error response (RFC 6749 §5.2, RFC 8693 §2.2.2). */
export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
    /** Seconds before trying again (a 429's Retry-After header). */
    readonly retryAfter?: number,
  ) {
    super(description);
  }
}
