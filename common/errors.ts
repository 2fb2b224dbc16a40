// Errors about one file, folder or archive member: the message is `<where>: <detail>`, so the CLI
// can print it as one line, and callers can still read the two parts apart.

export class LocatedError extends Error {
  constructor(
    /** The file, folder or URL the problem is about. */
    readonly where: string,
    /** What is wrong with it, and what was expected. */
    readonly detail: string,
  ) {
    super(`${where}: ${detail}`);
    this.name = new.target.name;
  }
}
