import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, jobLogger, redactUrl } from "../../handler/logger.js";

function capture(runpodFormat: boolean, secrets: string[] = []) {
  const lines: string[] = [];
  const log = createLogger({
    level: "info",
    runpodFormat,
    secrets,
    destination: new Writable({ write: (chunk, _e, cb) => (lines.push(...String(chunk).split("\n").filter(Boolean)), cb()) }),
  });
  return { log, lines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>), raw: () => lines.join("\n") };
}

describe("logger", () => {
  it("writes Runpod's line shape: requestId null outside a job, the job id inside, message and level", () => {
    const { log, lines } = capture(true);
    log.info("worker starting");
    jobLogger(log, "job-7").warn("Started.");
    expect(lines()).toEqual([
      { level: "INFO", requestId: null, message: "worker starting" },
      { level: "WARN", requestId: "job-7", message: "Started." },
    ]);
  });

  it("binds jobId in pino's own shape otherwise", () => {
    const { log, lines } = capture(false);
    jobLogger(log, "job-8").info("Started.");
    expect(lines()[0]).toMatchObject({ level: 30, jobId: "job-8", msg: "Started." });
  });

  it("never writes a secret: not in messages, not in errors, not in redacted fields", () => {
    const key = "rpa_SECRET_1234567890";
    const { log, raw } = capture(true, [key]);
    log.info(`calling with ${key}`);
    log.error({ err: new Error(`upstream said ${key}`) }, "failed");
    log.info({ headers: { authorization: key } }, "request");
    expect(raw()).not.toContain(key);
    expect(raw()).toContain("[REDACTED]");
  });

  it("logs URLs without their query string", () => {
    expect(redactUrl("https://bucket.s3.amazonaws.com/a/b.jpg?X-Amz-Signature=abc&X-Amz-Credential=def")).toBe("https://bucket.s3.amazonaws.com/a/b.jpg?[REDACTED]");
    expect(redactUrl(new URL("http://example.com:8080/x.png"))).toBe("http://example.com:8080/x.png");
    expect(redactUrl("not a url")).toBe("[unparsable URL]");
  });
});
