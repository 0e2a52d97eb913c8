/*
 * Pipeline initialisation and completion: --help, parameter validation against nextflow_schema.json, input
 * resolution into [meta, file] pairs, params.json, and the end-of-run message.
 *
 * nf-core does this with the nf-schema plugin, which Nextflow downloads at run time; this pipeline runs offline,
 * so the subset of JSON schema that nextflow_schema.json uses (type, enum, pattern, minimum/maximum, required,
 * format *-path with exists) is checked here.
 *
 * Every problem found before the run starts is reported as one line per problem, nothing is written to --outdir
 * (the trace file Nextflow opens at start-up is removed again), and the exit status is non-zero.
 */

workflow PIPELINE_INITIALISATION {
    main:
    def schema = readSchema("${projectDir}/nextflow_schema.json")

    if (params.help) {
        println(helpText(schema))
        discardRunFiles()
        System.exit(0)
    }
    if (params.version) {
        println("virnucpro ${workflow.manifest.version}")
        discardRunFiles()
        System.exit(0)
    }

    def problems = validateParameters(params, schema)
    if (problems) {
        abortRun(problems)
    }
    applyLegacyResourceCaps()
    def resolved = resolveInput(params.input as String)
    if (resolved.problems) {
        abortRun(resolved.problems)
    }
    writeParamsJson()
    samples = channel.fromList(resolved.rows)   // [ meta, reads ]

    emit:
    samples
}

workflow PIPELINE_COMPLETION {
    main:
    workflow.onComplete {
        completionMessage()
    }
}

// A function, not inline in the handler: inside the handler closure `workflow` does not resolve.
def completionMessage() {
    if (workflow.success) {
        log.info("virnucpro: done; results in ${file(params.outdir)}")
    } else {
        log.error("virnucpro: the run failed; fix the error above, then add -resume to continue where it stopped")
    }
}

// ------------------------------------------------------------------------------------------------------------
// Schema

def readSchema(String path) {
    return new groovy.json.JsonSlurper().parse(new File(path))
}

// [name: [definition..., group: title, required: bool]] in the order of the schema.
def schemaParameters(schema) {
    def result = [:]
    schema['$defs'].each { groupName, group ->
        def required = group.required ?: []
        group.properties.each { name, definition ->
            result[name] = definition + [group: group.title ?: groupName, required: name in required]
        }
    }
    return result
}

def helpText(schema) {
    def lines = []
    lines << "virnucpro ${workflow.manifest.version}: ${workflow.manifest.description}"
    lines << ''
    lines << 'Usage:'
    lines << '  nextflow run main.nf --input <fasta|fastq|samplesheet.csv> --esm_model <path> --dnabert_model <dir> \\'
    lines << '      --classifier <pth> --chunk_length <300|500> [-profile gpu|slurm|test] [--outdir results]'
    def lastGroup = null
    schemaParameters(schema).each { name, definition ->
        if (definition.group != lastGroup) {
            lines << ''
            lines << "${definition.group}:"
            lastGroup = definition.group
        }
        def types = definition.type instanceof List ? definition.type.findAll { it != 'null' }.join('|') : definition.type
        def flags = [types]
        if (definition.required) {
            flags << 'required'
        }
        if (definition.hidden) {
            flags << 'hidden'
        }
        lines << "  --${name.padRight(18)} [${flags.join(', ')}] ${definition.description ?: ''}".toString()
        if (definition['enum']) {
            lines << "      choices: ${definition['enum'].join(', ')}".toString()
        }
        if (definition.containsKey('default') && definition['default'] != null) {
            lines << "      default: ${definition['default']}".toString()
        }
        if (definition.help_text) {
            lines << "      ${definition.help_text}".toString()
        }
    }
    lines << ''
    lines << 'Nextflow options (one dash): -profile, -resume, -c <config>, -work-dir <dir>; see docs/install.md.'
    return lines.join('\n')
}

// Nextflow stores --chunk-length also as chunkLength; all spellings map to chunk_length.
def snakeName(String name) {
    return name.replace('-', '_').replaceAll(/([a-z0-9])([A-Z])/) { all, a, b -> "${a}_${b.toLowerCase()}" }
}

// Unknown parameters follow nf-schema's convention: a warning naming the closest known parameter (a typo stays easy
// to see), an error with `validation.failUnrecognisedParams = true`; `validation.ignoreParams` are never reported.
def validateParameters(Map given, schema) {
    def definitions = schemaParameters(schema)
    def problems = []
    def validation = (workflow.session.config.navigate('validation') ?: [:]) as Map
    def ignored = (validation.ignoreParams ?: []).collect { snakeName(it as String) }
    def unknown = given.keySet().collect { snakeName(it as String) }.findAll { !(it in definitions) && !(it in ignored) }.unique()
    unknown.each { name ->
        def message = "unknown parameter --${name} (closest known parameter: --${closestName(name, definitions.keySet())}; see --help)"
        if (validation.failUnrecognisedParams) {
            problems << message.toString()
        } else {
            log.warn("virnucpro: ${message}; ignored (validation.failUnrecognisedParams = true makes this an error)")
        }
    }
    definitions.each { name, definition ->
        def value = given[name]
        // Not `value == ''`: Groovy compares a memory or duration value (max_memory = 224.GB) by converting ''.
        if (value == null || (value instanceof CharSequence && value.toString().isEmpty())) {
            if (definition.required) {
                problems << "--${name} is required: ${definition.description}".toString()
            }
            return
        }
        def problem = checkValue(name, value, definition)
        if (problem) {
            problems << problem.toString()
        }
    }
    return problems
}

def closestName(String name, Collection<String> known) {
    return known.min { candidate -> editDistance(name, candidate) }
}

// Levenshtein distance: insertions, deletions and substitutions of one character each cost 1.
def editDistance(String a, String b) {
    def previous = (0..b.length()).toList()
    a.eachWithIndex { ca, i ->
        def current = [i + 1]
        b.eachWithIndex { cb, j ->
            current << [previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)].min()
        }
        previous = current
    }
    return previous[b.length()]
}

// max_cpus, max_memory and max_time (set by older nf-core/configs profiles) cap every task as process.resourceLimits
// does, whichever of the two is lower. Config files can only set them as params, which exist after the config is
// read, so the caps are applied here, before any process is created.
def applyLegacyResourceCaps() {
    def caps = [cpus: params.max_cpus, memory: params.max_memory, time: params.max_time].findAll { key, value -> value != null }
    if (!caps) {
        return
    }
    def process = workflow.session.config.process
    def limits = ((process.resourceLimits ?: [:]) as Map).clone()
    caps.each { key, value ->
        def cap = key == 'cpus' ? (value as int) : key == 'memory' ? new nextflow.util.MemoryUnit(value.toString()) : nextflow.util.Duration.of(value.toString())
        def current = limits[key] == null ? null : key == 'cpus' ? (limits[key] as int) : key == 'memory' ? new nextflow.util.MemoryUnit(limits[key].toString()) : nextflow.util.Duration.of(limits[key].toString())
        limits[key] = current == null || cap < current ? cap : current
    }
    process.resourceLimits = limits
    log.info("virnucpro: task resources capped at ${limits.collect { key, value -> "${key} ${value}" }.join(', ')} (max_cpus/max_memory/max_time)")
}

// JSON schema types of command-line values (Nextflow has already turned '300' into 300 and 'true' into true).
def matchesType(value, String type) {
    if (type == 'string') {
        // Config files write max_memory = 224.GB and max_time = 72.h: memory and duration values stand for strings.
        return value instanceof CharSequence || value instanceof Number || value instanceof nextflow.util.MemoryUnit || value instanceof nextflow.util.Duration
    }
    if (type == 'null') {
        return value == null
    }
    if (type == 'integer') {
        return value instanceof Integer || value instanceof Long || value instanceof BigInteger
    }
    if (type == 'number') {
        return value instanceof Number
    }
    if (type == 'boolean') {
        return value instanceof Boolean
    }
    return false
}

def checkValue(String name, value, definition) {
    def types = definition.type instanceof List ? definition.type : [definition.type]
    def typeOk = types.any { type -> matchesType(value, type as String) }
    if (!typeOk) {
        return "--${name} must be ${types.findAll { it != 'null' }.join(' or ')}, got '${value}'"
    }
    if (definition['enum'] && !(definition['enum'].any { it == value || it.toString() == value.toString() })) {
        return "--${name} must be one of ${definition['enum'].join(', ')}, got '${value}'"
    }
    if (definition.pattern && !(value.toString() ==~ definition.pattern)) {
        return "--${name} '${value}' does not match ${definition.pattern}${definition.errorMessage ? ': ' + definition.errorMessage : ''}"
    }
    if (definition.containsKey('minimum') && value instanceof Number && value < definition.minimum) {
        return "--${name} must be at least ${definition.minimum}, got ${value}"
    }
    if (definition.containsKey('maximum') && value instanceof Number && value > definition.maximum) {
        return "--${name} must be at most ${definition.maximum}, got ${value}"
    }
    if (definition.format in ['file-path', 'directory-path', 'path'] && definition.exists) {
        def path = file(value.toString())
        if (!path.exists()) {
            return "--${name}: ${path}: no such file or directory"
        }
        if (definition.format == 'file-path' && path.isDirectory()) {
            return "--${name}: ${path}: is a directory, expected a file"
        }
        if (definition.format == 'directory-path' && !path.isDirectory()) {
            return "--${name}: ${path}: is not a directory"
        }
    }
    return null
}

// ------------------------------------------------------------------------------------------------------------
// Input

// Sample names become folder names under --outdir (the rule of assets/schema_input.json, which
// `virnucpro check-samplesheet` applies to samplesheets).
def sampleNamePattern() {
    return /^[A-Za-z0-9][A-Za-z0-9._-]*$/
}

def reservedSampleNames() {
    return ['pipeline_info', 'report', 'multiqc']
}

// --input is one sequence file (sample id = file name without .gz and its extension) or a samplesheet (.csv).
// Returns [rows: [[meta, file], ...], problems: [...]].
def resolveInput(String input) {
    def path = file(input)
    if (path.name.toLowerCase().endsWith('.csv')) {
        return readSamplesheet(path)
    }
    def id = path.name.replaceFirst(/(?i)\.gz$/, '').replaceFirst(/\.[^.]+$/, '')
    def problems = []
    if (!(id ==~ sampleNamePattern()) || id in reservedSampleNames()) {
        problems << "${path}: '${id}' (from the file name) cannot be a sample name: use letters, digits, '.', '_', '-' and not ${reservedSampleNames().join(' or ')}; rename the file or use a samplesheet".toString()
    }
    def problem = sniffSequenceFile(path)
    if (problem) {
        problems << problem
    }
    return [rows: [[[id: id], path]], problems: problems]
}

// The samplesheet is validated by `virnucpro check-samplesheet` (against assets/schema_input.json) before anything
// runs; it writes the checked samples as JSON: local paths made absolute (relative ones are relative to the
// samplesheet's folder), URIs (s3://, https://, ...) as written, for Nextflow to stage; metadata columns join meta.
def readSamplesheet(sheet) {
    def valid = java.nio.file.Files.createTempFile('virnucpro-samplesheet-', '.valid.json')
    def command = ["${projectDir}/bin/virnucpro", 'check-samplesheet', '--input', sheet.toString(), '--out', valid.toString()]
    def proc = command.collect { it.toString() }.execute()
    def out = new StringBuffer()
    def err = new StringBuffer()
    proc.waitForProcessOutput(out, err)
    def text = valid.toFile().text
    java.nio.file.Files.deleteIfExists(valid)
    if (proc.exitValue() != 0) {
        def messages = err.toString().readLines().findAll { it.trim() }
        def message = messages ? messages.last().replaceFirst(/^virnucpro: error: /, '') : "${sheet}: check-samplesheet exited with status ${proc.exitValue()}"
        return [rows: [], problems: [message.toString()]]
    }
    def rows = []
    def problems = []
    new groovy.json.JsonSlurper().parseText(text).each { record ->
        def reads = record.files.collect { location -> readsFile(sheet, record.sample, location as String, problems) }
        rows << [[id: record.sample] + record.meta, reads.size() == 1 ? reads[0] : reads]
    }
    return [rows: rows, problems: problems]
}

// A local file is sniffed now; a URI is left for Nextflow to stage (reading it here would download it twice).
def readsFile(sheet, String sample, String location, List problems) {
    if (!(location ==~ /^[A-Za-z][A-Za-z0-9+.-]*:\/\/.*/)) {
        def reads = file(location)
        def problem = sniffSequenceFile(reads)
        if (problem == emptyFileProblem(reads)) {
            // One empty assembly must not block the other samples: it runs as an empty sample and is reported.
            log.warn("virnucpro: sample ${sample}: ${problem}; it runs as a sample with 0 records")
        } else if (problem) {
            problems << problem
        }
        return reads
    }
    try {
        return file(location)
    } catch (Exception e) {
        problems << "${sheet}: sample '${sample}': Nextflow cannot open ${location} (${e.message})".toString()
        return null
    }
}

// Cheap up-front check that a file can be read as FASTA or FASTQ, so that the common mistakes stop the run before
// it starts. Full parsing (and every other error) is `virnucpro preprocess`'s job.
def sniffSequenceFile(path) {
    if (!path.exists()) {
        return "${path}: no such file".toString()
    }
    if (path.isDirectory()) {
        return "${path}: is a directory, expected a FASTA or FASTQ file".toString()
    }
    if (path.size() == 0) {
        return emptyFileProblem(path)
    }
    try {
        return path.withInputStream { raw -> sniffStream(path, new BufferedInputStream(raw)) }
    } catch (IOException e) {
        return "${path}: cannot be read as FASTA/FASTQ (${e.message})".toString()
    }
}

// No record at all (0 bytes, blank lines, an empty .gz): an error for a lone --input, a warning in a samplesheet.
def emptyFileProblem(path) {
    return "${path}: file is empty".toString()
}

def sniffStream(path, BufferedInputStream stream) {
    stream.mark(2)
    def magic = [stream.read(), stream.read()]
    stream.reset()
    if (magic == [0x42, 0x5a] || magic == [0xfd, 0x37]) {
        return null   // bzip2 or xz: the JDK cannot look inside; preprocess reads them and judges
    }
    def text = magic == [0x1f, 0x8b] ? new BufferedInputStream(new java.util.zip.GZIPInputStream(stream)) : stream
    // Leading blank lines are allowed; look at the first other byte of the first 64 KiB.
    def head = text.readNBytes(65536) as List
    def first = head.find { b -> !Character.isWhitespace((b & 0xff) as char) }
    first = first == null ? -1 : (first & 0xff)
    if (first == -1) {
        return emptyFileProblem(path)
    }
    if (first != ('>' as char) as int && first != ('@' as char) as int) {
        def shown = first >= 32 && first < 127 ? "'${first as char}'" : String.format('byte 0x%02x', first)
        return "${path}: not a FASTA or FASTQ file (starts with ${shown}, expected '>' or '@')".toString()
    }
    return null
}

// ------------------------------------------------------------------------------------------------------------
// Run files

// The trace file is opened by Nextflow before the script runs; a run that stops during initialisation removes it
// (and the folders it created, when empty) so that a rejected run leaves --outdir as it found it.
def discardRunFiles() {
    def info = file("${params.outdir}/pipeline_info")
    def trace = info.resolve("execution_trace_${params.trace_report_suffix}.txt")
    trace.delete()
    [info, info.parent].each { dir ->
        if (dir.isDirectory() && !dir.list()) {
            dir.delete()
        }
    }
}

def abortRun(List problems) {
    discardRunFiles()
    error(problems.collect { "virnucpro: ${it}" }.join('\n'))
}

def writeParamsJson() {
    def info = file("${params.outdir}/pipeline_info")
    info.mkdirs()
    def values = params.findAll { name, value -> !(name as String).contains('-') && !(name ==~ /.*[A-Z].*/) }
    info.resolve('params.json').text = groovy.json.JsonOutput.prettyPrint(groovy.json.JsonOutput.toJson(values))
}
