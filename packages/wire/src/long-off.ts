import $protobuf from 'protobufjs/minimal.js';

// 64-bit fields (times in ms, sequences) must decode as plain numbers, as the generated types say
// (--force-number). protobufjs uses Long whenever the `long` package is installed, and the generated
// code reads this setting when it loads, so this module must be evaluated before gen/wire.js.
$protobuf.util.Long = undefined as unknown as typeof $protobuf.util.Long;
$protobuf.configure();
