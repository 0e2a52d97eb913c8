/*
 * Pipeline initialisation and completion: --help and the launch check (both from Python), input samples as
 * [meta, file] pairs, params.json, and the end-of-run message.
 *
 * Parameters and --input are checked by `virnucpro check-input` (virnucpro/io/pipeline_params.py against
 * nextflow_schema.json, virnucpro/io/samplesheet.py against assets/schema_input.json), run once here on the launch
 * host with its standard-library python3, like `virnucpro publish`: a bad run stops before any task is submitted,
 * which a first process could not promise, and a check inside a container would not see the samplesheet's files
 * (a task sees only what Nextflow staged for it). Groovy keeps what only Nextflow can do: the config (validation.*,
 * resource caps) and file() for the staged inputs.
 *
 * Every problem found before the run starts is reported as one line per problem, nothing is written to --outdir
 * (the trace file Nextflow opens at start-up is removed again), and the exit status is non-zero.
 */

workflow PIPELINE_INITIALISATION {
    main:
    if (params.help) {
        println(helpText())
        discardRunFiles()
        System.exit(0)
    }
    if (params.version) {
        println("virnucpro ${workflow.manifest.version}")
        discardRunFiles()
        System.exit(0)
    }

    def checked = checkInput()
    if (checked.problems) {
        abortRun(checked.problems)
    }
    applyLegacyResourceCaps()
    def rows = inputRows(checked.samples)
    if (rows.problems) {
        abortRun(rows.problems)
    }
    writeParamsJson()
    samples = channel.fromList(rows.rows)   // [ meta, reads ]

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
// Help and launch check

// Every parameter of nextflow_schema.json by section, as `virnucpro check-input --print-help` writes it.
def helpText() {
    def result = runOnHost(['check-input', '--print-help'])
    if (result.status != 0) {
        abortRun(["`virnucpro check-input --print-help` exited with status ${result.status}: ${result.err.trim()}".toString()])
    }
    return result.out.trim()
}

// `bin/virnucpro <args>` on the launch host: [status: exit status, out: stdout, err: stderr].
def runOnHost(List args) {
    def proc = (["${projectDir}/bin/virnucpro"] + args).collect { it.toString() }.execute()
    def out = new StringBuffer()
    def err = new StringBuffer()
    proc.waitForProcessOutput(out, err)
    return [status: proc.exitValue(), out: out.toString(), err: err.toString()]
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

// Runs `virnucpro check-input` on the run's parameters; returns [samples: [record, ...], problems: [...]] and shows
// its warnings. Values travel as JSON: true, numbers and text as Nextflow parsed them, anything else (a memory or
// duration value from a config file) as its text.
def checkInput() {
    def given = params.collectEntries { name, value ->
        [name, value == null || value instanceof Boolean || value instanceof Number ? value : value.toString()]
    }
    def validation = (workflow.session.config.navigate('validation') ?: [:]) as Map
    def paramsFile = java.nio.file.Files.createTempFile('virnucpro-params-', '.json')
    def samplesFile = java.nio.file.Files.createTempFile('virnucpro-samples-', '.json')
    paramsFile.toFile().text = groovy.json.JsonOutput.toJson(given)
    def args = ['check-input', '--params', paramsFile, '--out', samplesFile,
                '--ignore-params', (validation.ignoreParams ?: []).join(',')]
    if (validation.failUnrecognisedParams) {
        args << '--fail-unrecognised-params'
    }
    def result = runOnHost(args)
    def text = samplesFile.toFile().text
    [paramsFile, samplesFile].each { java.nio.file.Files.deleteIfExists(it) }
    def lines = result.err.readLines().findAll { it.trim() }
    lines.findAll { it.startsWith('virnucpro: warning: ') }.each { log.warn("virnucpro: ${it - 'virnucpro: warning: '}") }
    def problems = lines.findAll { it.startsWith('virnucpro: error: ') }.collect { it - 'virnucpro: error: ' }
    if (result.status != 0) {
        return [samples: [], problems: problems ?: ["`virnucpro check-input` exited with status ${result.status}: ${lines ? lines.last() : 'no message'}".toString()]]
    }
    return [samples: new groovy.json.JsonSlurper().parseText(text), problems: []]
}

// The checked samples as [meta, file] pairs (two files for paired reads); metadata columns join meta. Local paths
// are absolute; a URI becomes a Nextflow path here, which Nextflow stages for PREPROCESS (only Nextflow knows its
// file systems, so a URI it cannot open is reported here).
def inputRows(List samples) {
    def problems = []
    def rows = samples.collect { record ->
        def reads = record.files.collect { location ->
            try {
                return file(location as String)
            } catch (Exception e) {
                problems << "${params.input}: sample '${record.sample}': Nextflow cannot open ${location} (${e.message})".toString()
                return null
            }
        }
        [[id: record.sample] + record.meta, reads.size() == 1 ? reads[0] : reads]
    }
    return [rows: rows, problems: problems]
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
