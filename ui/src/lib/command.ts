// Commands as a person reads and edits them.
import type { CommandLine } from "../generated/CommandLine";

/** Quotes one argument for a POSIX shell only when it needs it. */
export function shellQuote(arg: string): string {
  if (arg === "") return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The command as one line (what a terminal would show). */
export function commandText(command: CommandLine): string {
  return "argv" in command ? command.argv.map(shellQuote).join(" ") : command.shell;
}

/** What the editor shows: one argument per line for argv, the line itself for a shell. */
export function commandEditorText(command: CommandLine): string {
  return "argv" in command ? command.argv.join("\n") : command.shell;
}

/** Reads the editor back in the same form as the original command; `null` when empty. */
export function parseEditedCommand(original: CommandLine, text: string): CommandLine | null {
  if ("argv" in original) {
    const argv = text.split("\n").map((l) => l.replace(/\r$/, ""));
    while (argv.length && argv[argv.length - 1].trim() === "") argv.pop();
    while (argv.length && argv[0].trim() === "") argv.shift();
    return argv.length ? { argv } : null;
  }
  return text.trim() ? { shell: text.trim() } : null;
}
