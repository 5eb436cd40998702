<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="en" sourcelanguage="en">
<context>
    <name>TesseraBrowser</name>
    <message>
        <location filename="../browser.py" line="45"/>
        <source>The URL holds a password: press Connect on it in the TESSERA dialog to keep it in QGIS's authentication database.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../browser.py" line="67"/>
        <source>All zones, in {}</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraClusterView</name>
    <message>
        <location filename="../cluster_view.py" line="36"/>
        <source>The map does not show the layer's area: pan to it first</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../cluster_view.py" line="44"/>
        <source>Choose a TESSERA layer to cluster</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../cluster_view.py" line="62"/>
        <source>Clusters {} ({} clusters)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../cluster_view.py" line="65"/>
        <source>{} clusters written to {}; centroids in {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../cluster_view.py" line="68"/>
        <source>Cluster this view</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraCredentials</name>
    <message>
        <location filename="../credentials.py" line="36"/>
        <source>The URL holds a password and a QGIS authentication configuration is chosen too: remove the password from the URL.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../credentials.py" line="45"/>
        <source>The password in the URL was not saved: QGIS's authentication database is not available (Settings &gt; Options &gt; Authentication).</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraDialog</name>
    <message>
        <location filename="../dialog.py" line="62"/>
        <location filename="../dialog.py" line="111"/>
        <source>TESSERA connection</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="68"/>
        <source>Folder…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="73"/>
        <source>S3 settings</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="75"/>
        <source>Anonymous (public bucket)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="78"/>
        <source>default AWS; or an S3-compatible endpoint URL</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="84"/>
        <source>Endpoint URL</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="85"/>
        <source>Region</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="86"/>
        <source>Credentials</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="87"/>
        <source>Name</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="88"/>
        <source>URL or folder</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="96"/>
        <source>TESSERA store folder</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="143"/>
        <source>Connect</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="144"/>
        <source>Connection</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="149"/>
        <source>New</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="150"/>
        <source>Edit</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="151"/>
        <source>Remove</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="152"/>
        <source>Import…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="153"/>
        <source>Export…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="154"/>
        <source>Open folder…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="169"/>
        <source>Cancel</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="181"/>
        <source>PCA (the store's global PCA)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="181"/>
        <source>PCA fitted to the view</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="181"/>
        <source>3 bands as RGB</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="181"/>
        <source>1 band with a colour ramp</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="190"/>
        <source>Dimensions PCA uses (Matryoshka depths)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="192"/>
        <source>The store's published stretch</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="193"/>
        <source>Year</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="194"/>
        <source>Show</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="195"/>
        <location filename="../dialog.py" line="396"/>
        <source>Bands</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="196"/>
        <source>Depth</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="197"/>
        <source>Colours</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="198"/>
        <source>Zone</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="200"/>
        <source>Add layer</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="206"/>
        <source>Close</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="278"/>
        <source>Export TESSERA connections</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="284"/>
        <source>Import TESSERA connections</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="320"/>
        <source>step {} of {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="321"/>
        <source>Building the sample store (first use only): {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="339"/>
        <source>Connecting to {}…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="340"/>
        <source>Connecting to {}: reading what the store holds…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="356"/>
        <source>Connected. Choose a year and what to show, then Add layer.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="365"/>
        <location filename="../dialog.py" line="379"/>
        <source>Cancelled.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="367"/>
        <source>Connect to {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="377"/>
        <location filename="../dialog.py" line="484"/>
        <source>Cancelled: no layer added.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="385"/>
        <source>Cannot reach the store</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="385"/>
        <source>The store did not answer in time</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="385"/>
        <source>Access denied</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="385"/>
        <source>The server's certificate is not trusted</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="385"/>
        <source>Nothing found at that address (404)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="385"/>
        <source>Not a Zarr v3 store</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="385"/>
        <source>Not a TESSERA store</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="385"/>
        <source>Cannot open the store</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="387"/>
        <source>In QGIS, add its certificate authority in Settings &gt; Options &gt; Authentication &gt; Certificate Manager (Authorities), or an SSL server exception for this host.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="394"/>
        <source>Store</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="394"/>
        <source>Dataset</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="395"/>
        <source>Model</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="395"/>
        <source>Layout</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="396"/>
        <source>Years</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="397"/>
        <source>Global PCA</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="397"/>
        <location filename="../dialog.py" line="399"/>
        <source>none</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="398"/>
        <source>Depths</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="399"/>
        <source>Published stretch</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="410"/>
        <source>{} (partial)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="412"/>
        <source>only in {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="417"/>
        <source>automatic (from the map extent)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="422"/>
        <source>{} dimensions</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="425"/>
        <source>the store's stretch</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="426"/>
        <source>equalised (the store's CDF)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="427"/>
        <source>each zone's own stretch</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="462"/>
        <source>Adding the layer: opening {} and sampling the map view for its colours…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="474"/>
        <source>Added “{}” to the map. Add another, or close this window.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="486"/>
        <source>Adding a TESSERA layer</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="492"/>
        <source>Add TESSERA embeddings layer</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../dialog.py" line="511"/>
        <source>Add TESSERA embeddings (Zarr v3) layers</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraFieldKit</name>
    <message>
        <location filename="../fieldkit.py" line="47"/>
        <source>Add a TESSERA layer to take its area offline.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../fieldkit.py" line="59"/>
        <source>{} is not a Zarr store (it has no zarr.json)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../fieldkit.py" line="61"/>
        <source>{} has a damaged zarr.json</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../fieldkit.py" line="63"/>
        <source>{} is not a Zarr v3 store</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../fieldkit.py" line="66"/>
        <source>every depth</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../fieldkit.py" line="67"/>
        <source>a pack of {zones}, years {years}, depth {depth}, from {source}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../fieldkit.py" line="70"/>
        <source>a folder store</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../fieldkit.py" line="81"/>
        <source>Folder: {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../fieldkit.py" line="93"/>
        <source>Open a TESSERA folder store or pack</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../fieldkit.py" line="99"/>
        <source>TESSERA</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../fieldkit.py" line="102"/>
        <source>{}: {}</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraInspector</name>
    <message>
        <location filename="../inspector.py" line="154"/>
        <source>band {} (A{:03d})</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="176"/>
        <source>Click a pixel with the inspector tool</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="213"/>
        <source>band</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="270"/>
        <source>TESSERA pixel inspector</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="278"/>
        <source>Plot</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="279"/>
        <source>Table</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="285"/>
        <source>Copy CSV</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="286"/>
        <source>Copy JSON</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="287"/>
        <source>Copy table</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="288"/>
        <source>Clear</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="313"/>
        <source>no data: not embedded</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="313"/>
        <source>no data: water or no source data</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="314"/>
        <source>no data: scale out of range</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="314"/>
        <source>no data: outside the store</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="315"/>
        <source>no data</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="324"/>
        <source>observed: {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="328"/>
        <source>{} row {} col {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../inspector.py" line="333"/>
        <source>Observations that fed this embedding: {}</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraLayers</name>
    <message>
        <location filename="../layers.py" line="232"/>
        <source>Drawn from the {}: zoom in to see the embeddings.</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraMissing</name>
    <message>
        <location filename="../missing.py" line="36"/>
        <source>The TESSERA plugin needs Python packages that this QGIS does not have:

  - {}

Install them with this command (then restart QGIS):

{}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../missing.py" line="40"/>
        <source>Optional, not needed to start:

  - {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../missing.py" line="44"/>
        <source>TESSERA: packages missing</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../missing.py" line="46"/>
        <source>Install now</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../missing.py" line="48"/>
        <source>Also install the optional packages</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../missing.py" line="64"/>
        <source>Install TESSERA plugin packages</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../missing.py" line="70"/>
        <source>Packages installed: restart QGIS to use the TESSERA plugin.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../missing.py" line="72"/>
        <source>Installing the packages failed: {}</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraOptions</name>
    <message>
        <location filename="../options.py" line="35"/>
        <source>QGIS's network timeout</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="37"/>
        <source>A disk cache keeps every chunk you have seen, so those areas work offline. Leave the folder empty for no disk cache.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="39"/>
        <source>Cache folder</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="40"/>
        <source>Cache size limit</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="41"/>
        <source>Memory for decoded chunks</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="42"/>
        <source>Parallel requests</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="43"/>
        <source>Network timeout</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="44"/>
        <source>Default year</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="45"/>
        <source> million pixels</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="46"/>
        <source>10 m pixels a map view may read (17 million: a view of about 41 x 41 km)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="49"/>
        <source>The store's preview, else a coarse one</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="49"/>
        <source>A coarse preview from a sample of the data</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="49"/>
        <source>Nothing: zoom in to see the layer</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="51"/>
        <source>A map view that needs more 10 m pixels than the budget draws a preview instead.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="53"/>
        <source>Pixel budget of a map view</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="54"/>
        <source>Over the budget, draw</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="57"/>
        <source>Exports run as tasks on this Dask cluster (needs the dask and distributed packages here and on the cluster). Empty: on this computer.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="59"/>
        <source>Dask scheduler for exports</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../options.py" line="60"/>
        <source>Proxy and SSL settings come from Settings &gt; Options &gt; Network.</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraPack</name>
    <message>
        <location filename="../processing/pack.py" line="35"/>
        <source>Years must be numbers like 2024,2025</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="37"/>
        <source>Give the years to take, e.g. 2024,2025</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="46"/>
        <source>Take an area offline (pack)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="49"/>
        <source>Embeddings</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="58"/>
        <source>Copies the embeddings of an area (an extent, or the bounding boxes of polygons) and the years asked for into a new folder: a TESSERA store that QGIS, zarr-python and GDAL open like the original, without a network. Only the chunks of the area are fetched, as they are stored. The log says first how many bytes it will fetch and how long that takes at the measured speed. A stopped pack stays in OUTPUT.part: run again with the same output to resume it; only what is missing is fetched. Each chunk is checked before the folder gets its name.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="67"/>
        <source>Store (a saved TESSERA connection, a URL or a folder)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="68"/>
        <source>Area</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="70"/>
        <source>Polygons (instead of an extent: the area around each)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="72"/>
        <source>Years (e.g. 2024,2025)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="76"/>
        <source>Depth: keep only the array of 4, 16 or 128 dimensions (0 = every depth the store has)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="79"/>
        <source>Only estimate the size and time (write nothing)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="80"/>
        <source>Pack (a new folder)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="81"/>
        <source>Bytes fetched (or to fetch)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="82"/>
        <source>Seconds taken (or estimated)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="97"/>
        <source>The polygon layer has no (selected) features</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="101"/>
        <source>Give an area: an extent or polygons</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="123"/>
        <source>, about {} s left</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="124"/>
        <source>{:.1f} of {:.1f} MB{}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="131"/>
        <source>Cancelled</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="134"/>
        <source>{} chunks checked; {:.1f} MB on disk</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/pack.py" line="141"/>
        <source>{}: the unfinished pack is kept in {}; run again with the same output to resume it</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraPlugin</name>
    <message>
        <location filename="../plugin.py" line="86"/>
        <location filename="../plugin.py" line="135"/>
        <source>TESSERA</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="88"/>
        <source>Add TESSERA embeddings layer…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="90"/>
        <source>Add TESSERA layer</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="112"/>
        <source>Pixel inspector</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="112"/>
        <source>Click a pixel to see its 128 embedding values</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="113"/>
        <source>Find similar pixels</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="113"/>
        <source>Click a pixel, or drag over a small area, to map how similar every pixel is</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="115"/>
        <source>Fit or export a region</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="115"/>
        <source>Drag a rectangle, then fit the PCA colours to it or export it</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="127"/>
        <source>TESSERA style</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="129"/>
        <source>Year, bands, PCA and stretch of the selected TESSERA layer</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="133"/>
        <source>Export TESSERA embeddings…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="138"/>
        <source>About TESSERA embeddings</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="240"/>
        <source>TESSERA embeddings</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../plugin.py" line="241"/>
        <source>tessera-qgis {version}
QGIS {qgis}

TESSERA embeddings as Zarr v3 stores, streamed onto the map.</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraProcessing</name>
    <message>
        <location filename="../processing/analysis.py" line="21"/>
        <source>Depth: embedding dimensions to use (0 = all; 4 or 16 on stores with Matryoshka depths)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/analysis.py" line="67"/>
        <source>Years are written like 2017-2020, 2024; got {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/analysis.py" line="75"/>
        <source>Random forests need the optional package scikit-learn in QGIS's Python (k nearest neighbours work without it). Install it with: {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/apply_model.py" line="20"/>
        <source>Apply a saved model</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/apply_model.py" line="23"/>
        <source>Applies a model file written by Classify from labelled points (k nearest neighbours or random forest: classes and confidence) or the centroids written by Cluster (k-means: clusters) to a region and year of a store. The model reads as many embedding dimensions as it was trained on.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/apply_model.py" line="28"/>
        <source>Model file (JSON)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/apply_model.py" line="32"/>
        <location filename="../processing/classify.py" line="62"/>
        <source>Classes</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/apply_model.py" line="33"/>
        <location filename="../processing/export.py" line="50"/>
        <location filename="../processing/trajectory.py" line="54"/>
        <source>All files written</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/apply_model.py" line="40"/>
        <source>{} model, {} classes, {} dimensions (trained on {} {})</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/base.py" line="32"/>
        <source>Give a store: a saved connection's name, a URL or a folder</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/base.py" line="51"/>
        <source>Embeddings</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/base.py" line="61"/>
        <location filename="../processing/trajectory.py" line="34"/>
        <source>Store (a saved TESSERA connection, a URL or a folder)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/base.py" line="62"/>
        <source>Year</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/base.py" line="68"/>
        <source>Dask scheduler (e.g. tcp://host:8786; empty: this computer)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/base.py" line="71"/>
        <source>Write the output rasters as tasks on a Dask cluster: the workers read the store and write Cloud Optimized GeoTIFF tiles (learning, reports and model files stay on this computer). An output ending in .vrt keeps the tiles (in a folder beside it) tied by a VRT; a .tif output is mosaicked from them.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/base.py" line="87"/>
        <source>A Dask cluster export needs the packages dask and distributed in QGIS's Python (and the same versions on the cluster). Install them with: {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/base.py" line="93"/>
        <source>Region</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/base.py" line="99"/>
        <source>Give a region (an extent)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/base.py" line="106"/>
        <source>Cancelled: nothing was written</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/change.py" line="16"/>
        <source>Change between years</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/change.py" line="19"/>
        <source>Per-pixel cosine distance between two years' embeddings (0: the same, up to 2: opposite); nodata where either year has no data. High values show where the land changed.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/change.py" line="24"/>
        <source>Second year</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/change.py" line="30"/>
        <source>Change</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/change.py" line="36"/>
        <source>Choose two different years</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="28"/>
        <source>Classify from labelled points</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="31"/>
        <source>The labelled points' embeddings train a classifier: k nearest neighbours (cosine similarity) or a random forest (when the optional package scikit-learn is installed). Every run assesses it with a stratified k-fold and a spatial k-fold that holds out whole 1 km blocks (neighbouring pixels look alike, so this is the honest figure for new areas): confusion matrix, overall accuracy, kappa and per-class precision, recall and F1 in an HTML report (and CSV). The model is saved as a JSON file for Apply a saved model. Out come a class raster (class names in its QGIS style) and a confidence raster; with other years, one pair per year (NAME_YEAR.tif) and the class transitions between consecutive years (hectares) in the report.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="41"/>
        <source>Labelled points</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="43"/>
        <source>Class field</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="46"/>
        <source>Classifier</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="47"/>
        <source>Neighbours (k)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="50"/>
        <source>Trees (random forest)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="52"/>
        <source>Folds of the accuracy assessment</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="58"/>
        <source>Other years to classify (e.g. 2017-2023, 2025)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="63"/>
        <source>Accuracy report (HTML, a CSV beside it; empty: beside the classes)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="64"/>
        <location filename="../processing/trajectory.py" line="52"/>
        <source>HTML files (*.html)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="65"/>
        <source>Model file (empty: beside the classes)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="65"/>
        <location filename="../processing/cluster.py" line="47"/>
        <source>JSON files (*.json)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="66"/>
        <source>Classes and confidence</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="67"/>
        <source>Overall accuracy (stratified k-fold)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="68"/>
        <source>Overall accuracy (spatial k-fold)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="69"/>
        <source>Kappa (stratified k-fold)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="75"/>
        <source>Give a point layer and its class field</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/classify.py" line="103"/>
        <source>transitions {} to {}: {:.2f} ha changed class</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/cluster.py" line="23"/>
        <source>Cluster (k-means)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/cluster.py" line="26"/>
        <source>Groups the pixels of a region by their embeddings, without labels. k-means runs on a random sample of at most 200,000 valid pixels (K = 0 chooses the number of clusters from 2 to 12 by the silhouette of a subsample), then every pixel takes its nearest centroid. Out come a class raster (cluster 1 is the largest; a paletted style beside it) and the centroids as a JSON model file that Apply a saved model uses on another year or area.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/cluster.py" line="35"/>
        <source>Number of clusters (0 = automatic, 2 to 12)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/cluster.py" line="38"/>
        <source>Pixels sampled for k-means (at most 200,000)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/cluster.py" line="45"/>
        <source>Clusters</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/cluster.py" line="46"/>
        <source>Centroids (model file; empty: beside the clusters)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/cluster.py" line="48"/>
        <source>Number of clusters</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/cluster.py" line="64"/>
        <source>silhouette by number of clusters: {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/cluster.py" line="66"/>
        <source>{} clusters from {} sampled pixels</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="25"/>
        <source>Export embeddings</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="28"/>
        <source>Export a region of a TESSERA store to GeoTIFF: float32 embeddings (all bands or some), PCA RGB, or int8 plus a scales file. The region is an extent or polygons (pixels outside them are nodata), optionally one file per polygon. The native UTM zone grid is used unless an output CRS is given; a region across zones can also be written as one file per zone.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="37"/>
        <source>Polygons (instead of an extent)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="39"/>
        <source>One file per polygon</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="40"/>
        <source>Output</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="41"/>
        <source>Bands (e.g. 1,2,3; empty: all)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="43"/>
        <source>Output CRS (empty: the native UTM zone)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="45"/>
        <source>One file per UTM zone</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="46"/>
        <source>Cloud Optimized GeoTIFF</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="49"/>
        <source>Output GeoTIFF</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="60"/>
        <source>Bands must be numbers like 1,2,3</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="74"/>
        <source>The polygon layer has no (selected) features</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/export.py" line="93"/>
        <source>wrote {}</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/sample.py" line="16"/>
        <source>Sample embeddings at points</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/sample.py" line="19"/>
        <source>The same points with the 128 dequantised values of their pixel (A001 to A128), its scale and a valid flag (0 where there is no data): a training table for classifiers.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/sample.py" line="23"/>
        <source>Points</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/sample.py" line="26"/>
        <source>Points with embeddings</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/sample.py" line="31"/>
        <source>Give a point layer</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/similarity.py" line="20"/>
        <source>Similarity to a reference</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/similarity.py" line="23"/>
        <source>Cosine similarity between every pixel of a region and a reference embedding: the pixel at a point, or the average over polygons.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/similarity.py" line="28"/>
        <source>Reference point</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/similarity.py" line="30"/>
        <source>Reference polygons (average)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/similarity.py" line="35"/>
        <source>Similarity</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/similarity.py" line="53"/>
        <source>The reference polygons hold no embedding (nodata)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/similarity.py" line="57"/>
        <source>Give a reference point or reference polygons</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/similarity.py" line="60"/>
        <source>There is no embedding at the reference point (nodata)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/trajectory.py" line="24"/>
        <source>Change trajectory over years</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/trajectory.py" line="27"/>
        <source>For every pixel, the cosine distance of each year's embedding to a baseline: one year's embedding, or (baseline 0) the mean of the years before it. A pixel changed in a year where the distance reaches the threshold. Out come the distances (one band per year), the year of the largest change (NAME_year.tif; 0 where no year reaches the threshold) and a change report (HTML with a chart, and CSV): the area changed per year, and per class when a class raster is given.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/trajectory.py" line="35"/>
        <source>Years (e.g. 2017-2025; empty: all the store's)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/trajectory.py" line="37"/>
        <source>Baseline year (0 = the mean of the years before each year)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/trajectory.py" line="41"/>
        <source>Changed where the cosine distance is at least</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/trajectory.py" line="46"/>
        <source>Class raster for the report (optional)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/trajectory.py" line="50"/>
        <source>Distances to the baseline</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/trajectory.py" line="51"/>
        <source>Change report (HTML, a CSV beside it; empty: beside the distances)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/trajectory.py" line="53"/>
        <source>Year of the largest change</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/trajectory.py" line="63"/>
        <source>The mean of the years before needs at least two years</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/trajectory.py" line="69"/>
        <source>The class raster must be a file (a GeoTIFF, say)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../processing/trajectory.py" line="80"/>
        <source>{}: {:.2f} ha changed of {:.2f} ha with data</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraProvider</name>
    <message>
        <location filename="../provider.py" line="173"/>
        <source>Store {}: zoom in for the embeddings.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../provider.py" line="175"/>
        <source>Showing a coarse preview: zoom in for every pixel.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../provider.py" line="177"/>
        <source>Zoom in, or raise the budget in Options &gt; TESSERA.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../provider.py" line="407"/>
        <source>Some of the layer could not be drawn: {}</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraStyleDock</name>
    <message>
        <location filename="../style_dock.py" line="66"/>
        <source>TESSERA style</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="77"/>
        <location filename="../style_dock.py" line="191"/>
        <source>Select a TESSERA layer</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="81"/>
        <source>Year</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="84"/>
        <source>3 bands as RGB</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="84"/>
        <source>1 band with a colour ramp</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="84"/>
        <source>PCA</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="85"/>
        <source>Mode</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="90"/>
        <source>Bands</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="92"/>
        <source>2-98 % of the view</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="93"/>
        <source>the store's range</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="94"/>
        <source>fixed</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="95"/>
        <source>Stretch</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="101"/>
        <location filename="../style_dock.py" line="178"/>
        <source>Min / max</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="103"/>
        <source>Apply</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="105"/>
        <source>Fit PCA to this view</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="109"/>
        <source>Fitting PCA… %p%</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="110"/>
        <source>Cancel</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="112"/>
        <source>Lock PCA (kept in the project)</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="114"/>
        <source>Cluster this view</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="115"/>
        <source>k-means of the layer's year over the map view</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="119"/>
        <location filename="../style_dock.py" line="178"/>
        <source>Threshold / top</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="264"/>
        <source>Stretching colours to the store's range</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../style_dock.py" line="278"/>
        <source>Stretching colours to the view</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraTasks</name>
    <message>
        <location filename="../tasks.py" line="71"/>
        <source>{} cancelled</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../tasks.py" line="78"/>
        <source>{} failed: {}</source>
        <translation type="unfinished"></translation>
    </message>
</context>
<context>
    <name>TesseraTools</name>
    <message>
        <location filename="../tools.py" line="132"/>
        <location filename="../tools.py" line="171"/>
        <source>Add a TESSERA layer first, then click on it.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../tools.py" line="155"/>
        <source>TESSERA similarity</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../tools.py" line="185"/>
        <source>TESSERA pixel</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../tools.py" line="201"/>
        <source>Fit PCA colours to this region</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../tools.py" line="202"/>
        <source>Export this region…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../tools.py" line="203"/>
        <source>Take this area offline…</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../tools.py" line="211"/>
        <source>Select a TESSERA PCA layer, then drag a region.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../tools.py" line="262"/>
        <source>PCA colours fitted to the region.</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <location filename="../tools.py" line="266"/>
        <source>Fitting PCA colours to a region</source>
        <translation type="unfinished"></translation>
    </message>
</context>
</TS>
