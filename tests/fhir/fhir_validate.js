// The FHIR R4 schema check as a process, for the Python tests (fhir_net.py): each line read is
// a JSON document; each line written is {"errors": [...]} for it, [] when it is valid.
import readline from 'node:readline';
import { check } from './fhir_schema.js';

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  let errors;
  try {
    errors = check(JSON.parse(line));
  } catch (e) {
    errors = [`not JSON: ${e.message}`];
  }
  process.stdout.write(JSON.stringify({ errors }) + '\n');
});
