import { describe, expect, it } from "vitest";
import type { WorkflowInput } from "../generated/WorkflowInput";
import { coerceInputs, controlFor, initialValues } from "./inputsForm";

const input = (name: string, kind: string, def: WorkflowInput["default"] = null): WorkflowInput => ({ name, kind, default: def, description: null });

const INPUTS = [
  input("module", "string", "src/utils.py"),
  input("run_tests", "boolean", true),
  input("max_attempts", "integer", 2),
  input("temperature", "number", 0.2),
  input("markers", "list", ["not slow"]),
  input("labels", "object", null),
  input("test", "string", null),
];

describe("the run form", () => {
  it("has a control per kind: checkbox, number, JSON or text", () => {
    expect(INPUTS.map((i) => controlFor(i.kind))).toEqual(["text", "checkbox", "integer", "number", "json", "json", "text"]);
  });

  it("starts with the defaults", () => {
    expect(initialValues(INPUTS)).toEqual({
      module: "src/utils.py",
      run_tests: true,
      max_attempts: 2,
      temperature: 0.2,
      markers: '["not slow"]',
      labels: "",
      test: "",
    });
  });
});

describe("coerceInputs", () => {
  it("sends every value as the text the engine reads", () => {
    const values = { ...initialValues(INPUTS), labels: '{"bug": "red"}', test: "tests/test_a.py::test_b", max_attempts: 3, run_tests: false };
    const { inputs, errors } = coerceInputs(INPUTS, values);
    expect(errors).toEqual({});
    expect(inputs).toEqual({
      module: "src/utils.py",
      run_tests: "false",
      max_attempts: "3",
      temperature: "0.2",
      markers: '["not slow"]',
      labels: '{"bug": "red"}',
      test: "tests/test_a.py::test_b",
    });
  });

  it("leaves a blank field with a default to the engine, and requires one without", () => {
    const values = { ...initialValues(INPUTS), max_attempts: null, temperature: "", labels: "", test: "  " };
    const { inputs, errors } = coerceInputs(INPUTS, values);
    expect(inputs.max_attempts).toBeUndefined();
    expect(inputs.temperature).toBeUndefined();
    expect(errors).toEqual({ labels: "required", test: "required" });
  });

  it("says what is wrong with a value of the wrong type", () => {
    const values = { ...initialValues(INPUTS), max_attempts: "1.5", temperature: "warm", markers: '{"a": 1}', labels: "[1]", test: "x" };
    const { errors } = coerceInputs(INPUTS, values);
    expect(errors.max_attempts).toBe("must be a whole number");
    expect(errors.temperature).toBe("must be a number");
    expect(errors.markers).toMatch(/JSON list/);
    expect(errors.labels).toMatch(/JSON object/);
  });

  it("reads number inputs as the browser gives them (numbers)", () => {
    const { inputs } = coerceInputs([input("n", "integer", null), input("x", "number", null)], { n: 42, x: -0.5 });
    expect(inputs).toEqual({ n: "42", x: "-0.5" });
  });
});
