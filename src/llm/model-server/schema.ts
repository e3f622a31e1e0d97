/**
 * Tool argument schemas: OpenAI sends JSON Schema; node-llama-cpp constrains function-call
 * arguments with a grammar built from a subset of it (GbnfJsonSchema). This maps one to the other,
 * keeping what constrains the shape (types, properties, required, enum, const, items, anyOf/oneOf,
 * string lengths, $ref to $defs/definitions) and dropping what the grammar cannot express
 * (numeric ranges, patterns, patternProperties, formats other than date/time). Anything it cannot
 * map becomes "any JSON value", so a tool is never refused for its schema. Pure.
 */
import type { GbnfJsonSchema } from "node-llama-cpp";

type Json = Record<string, unknown>;

const IMMUTABLE = new Set(["string", "number", "integer", "boolean", "null"]);
type Immutable = "string" | "number" | "integer" | "boolean" | "null";

/** Any JSON value. */
export const ANY_JSON: GbnfJsonSchema = {
  oneOf: [
    { type: ["string", "number", "boolean", "null"] },
    { type: "array" },
    { type: "object", additionalProperties: true },
  ],
};

const MAX_DEPTH = 12;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isPrimitive(v: unknown): v is string | number | boolean | null {
  return v === null || ["string", "number", "boolean"].includes(typeof v);
}

function withDescription(schema: GbnfJsonSchema, source: Json): GbnfJsonSchema {
  return typeof source.description === "string" && source.description
    ? ({ ...schema, description: source.description } as GbnfJsonSchema)
    : schema;
}

function resolveRef(ref: string, root: Json): unknown {
  const m = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref);
  if (!m) return undefined;
  const defs = root[m[1]!];
  return isObject(defs) ? defs[m[2]!] : undefined;
}

function convert(schema: unknown, root: Json, depth: number): GbnfJsonSchema {
  if (schema === true || schema === undefined) return ANY_JSON;
  if (!isObject(schema) || depth > MAX_DEPTH) return ANY_JSON;
  const s = schema;

  if (typeof s.$ref === "string") {
    const target = resolveRef(s.$ref, root);
    return target === undefined ? ANY_JSON : withDescription(convert(target, root, depth + 1), s);
  }
  if ("const" in s) return isPrimitive(s.const) ? withDescription({ const: s.const }, s) : ANY_JSON;
  if (Array.isArray(s.enum)) {
    const values = s.enum.filter(isPrimitive);
    return values.length > 0 ? withDescription({ enum: values }, s) : ANY_JSON;
  }
  const alternatives = Array.isArray(s.anyOf) ? s.anyOf : Array.isArray(s.oneOf) ? s.oneOf : undefined;
  if (alternatives) {
    if (alternatives.length === 0) return ANY_JSON;
    if (alternatives.length === 1) return withDescription(convert(alternatives[0], root, depth + 1), s);
    return withDescription({ oneOf: alternatives.map((a) => convert(a, root, depth + 1)) }, s);
  }
  if (Array.isArray(s.allOf)) {
    // The common case is one schema, or object schemas to merge; anything else is "any".
    const parts = s.allOf.filter(isObject);
    if (parts.length === 1) return withDescription(convert(parts[0], root, depth + 1), s);
    if (parts.every((p) => p.type === "object" || isObject(p.properties))) {
      const merged: Json = { type: "object", properties: {}, required: [] };
      for (const p of parts) {
        Object.assign(merged.properties as Json, isObject(p.properties) ? p.properties : {});
        (merged.required as unknown[]).push(...(Array.isArray(p.required) ? p.required : []));
      }
      return withDescription(convert(merged, root, depth + 1), s);
    }
    return ANY_JSON;
  }

  let type = s.type;
  if (type === undefined) {
    if (isObject(s.properties) || isObject(s.patternProperties) || "additionalProperties" in s)
      type = "object";
    else if ("items" in s || "prefixItems" in s) type = "array";
    else return withDescription(ANY_JSON, s);
  }
  if (Array.isArray(type)) {
    const types = type.filter((t): t is string => typeof t === "string");
    if (types.length === 0) return ANY_JSON;
    if (types.every((t) => IMMUTABLE.has(t))) return withDescription({ type: types as Immutable[] }, s);
    return withDescription(
      { oneOf: types.map((t) => convert({ ...s, type: t, description: undefined }, root, depth + 1)) },
      s,
    );
  }
  switch (type) {
    case "string": {
      if (s.format === "date-time" || s.format === "date" || s.format === "time") {
        return withDescription({ type: "string", format: s.format }, s);
      }
      const out: { type: "string"; minLength?: number; maxLength?: number } = { type: "string" };
      if (Number.isInteger(s.minLength) && (s.minLength as number) >= 0)
        out.minLength = s.minLength as number;
      if (Number.isInteger(s.maxLength) && (s.maxLength as number) >= 0)
        out.maxLength = s.maxLength as number;
      return withDescription(out, s);
    }
    case "number":
    case "integer":
    case "boolean":
    case "null":
      return withDescription({ type }, s);
    case "array": {
      const out: {
        type: "array";
        items?: GbnfJsonSchema;
        prefixItems?: GbnfJsonSchema[];
        minItems?: number;
        maxItems?: number;
      } = { type: "array" };
      if (Array.isArray(s.prefixItems))
        out.prefixItems = s.prefixItems.map((i) => convert(i, root, depth + 1));
      if (Array.isArray(s.items)) out.prefixItems = s.items.map((i) => convert(i, root, depth + 1));
      else if (isObject(s.items)) out.items = convert(s.items, root, depth + 1);
      if (Number.isInteger(s.minItems) && (s.minItems as number) >= 0) out.minItems = s.minItems as number;
      if (Number.isInteger(s.maxItems) && (s.maxItems as number) >= 0) out.maxItems = s.maxItems as number;
      return withDescription(out, s);
    }
    case "object": {
      const props = isObject(s.properties) ? s.properties : {};
      const properties: Record<string, GbnfJsonSchema> = {};
      for (const [k, v] of Object.entries(props)) properties[k] = convert(v, root, depth + 1);
      const required = Array.isArray(s.required)
        ? s.required.filter((k): k is string => typeof k === "string" && k in properties)
        : [];
      // Free-form objects (no properties, patternProperties, additionalProperties: true or a schema)
      // take any keys; objects with declared properties take only those, so the grammar stays tight.
      let additionalProperties: boolean | GbnfJsonSchema = Object.keys(properties).length === 0;
      if (s.additionalProperties === true || isObject(s.patternProperties)) additionalProperties = true;
      else if (isObject(s.additionalProperties))
        additionalProperties = convert(s.additionalProperties, root, depth + 1);
      else if (s.additionalProperties === false) additionalProperties = false;
      return withDescription(
        {
          type: "object",
          properties,
          ...(required.length > 0 ? { required } : {}),
          additionalProperties,
        } as GbnfJsonSchema,
        s,
      );
    }
    default:
      return ANY_JSON;
  }
}

/**
 * The grammar schema for a tool's `parameters`. Undefined parameters (a tool without arguments)
 * stay undefined; node-llama-cpp then calls it with no arguments.
 */
export function toGrammarSchema(parameters: unknown): GbnfJsonSchema | undefined {
  if (parameters === undefined || parameters === null) return undefined;
  if (!isObject(parameters)) return ANY_JSON;
  return convert(parameters, parameters, 0);
}
